"""Shards of the training questions and their seeds (the sampling, rollout and evaluation stages).

Shard ``s`` of ``n`` holds the train rows whose index is ``s`` mod ``n``; its seed depends only on
the run seed, ``s`` and the stream (which sampler), so a shard always yields the same samples on CPU.
"""

from __future__ import annotations

import pandas as pd


def shard_rows(df: pd.DataFrame, shard: int, shards: int) -> pd.DataFrame:
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} is not in 0..{shards - 1}")
    return df.iloc[shard::shards].reset_index(drop=True)


def shard_seed(seed: int, shard: int, stream: int) -> int:
    """Distinct, stable seeds per (run seed, shard, stream)."""
    return (seed * 1_000_003 + shard * 10_007 + stream * 101) % (2**31)

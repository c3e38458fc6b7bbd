"""Helpers on the pipeline's tables that several stages and tools share: which traces a selection
keeps (and which questions fall back to their original trace), and per-question accuracy (the
difficulty of a question, and a model's per-question score).

They run no model, so ``varreason traces`` and the report use them without importing torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from varreason import columns as C
from varreason.io import read_parquet, read_shards


def select_traces(df: pd.DataFrame, mode: str, threshold: float) -> pd.DataFrame:
    """Rows of the weights table that enter the final set, with their training weight."""
    live = df[np.isfinite(df["log_weight"])]
    if mode == "soft":
        return live[live["weight"] > 0].assign(train_weight=live["weight"])
    best = live.loc[live.groupby("question_id", sort=False)["log_weight"].idxmax()]
    if mode == "threshold":
        best = best[np.exp(best["log_weight"]) > threshold]
    elif mode != "argmax":
        raise ValueError(f"select.mode must be argmax, threshold or soft, got {mode!r}")
    return best.assign(train_weight=1.0)


def fallback_questions(weights: pd.DataFrame) -> list:
    """Questions of a weights table whose traces all have weight zero (no finite log-weight), in table order."""
    live = np.isfinite(weights["log_weight"].to_numpy(dtype=np.float64))
    any_live = pd.Series(live, index=weights.index).groupby(weights["question_id"], sort=False).any()
    return any_live.index[~any_live.to_numpy()].tolist()


def own_accuracy(initial_samples: list[str | Path]) -> pd.Series:
    """pi_0's accuracy on each training question over its own samples (sample_initial's shards).

    The difficulty of a question for the claims report and ``varreason traces``.
    """
    own = read_shards(initial_samples, ["question_id", "correct"])
    return own.groupby("question_id")["correct"].mean().astype(float)


def per_question(path: str | Path) -> pd.DataFrame:
    """Greedy correctness and sampled accuracy (pass@1) per test question, indexed by question id."""
    df = read_parquet(path, C.EVAL_SAMPLES)
    greedy = df[df["decoding"] == "greedy"].groupby("question_id")["correct"].mean()
    sampled = df[df["decoding"] == "sampled"].groupby("question_id")["correct"].mean()
    return pd.DataFrame({"greedy": greedy.astype(float), "pass1": sampled.astype(float)})

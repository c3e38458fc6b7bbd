"""Atomic Parquet/JSON writes and checked reads: a killed run never leaves a half file that looks done."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd


class InputError(ValueError):
    """A stage input that is missing or malformed; the message names the file and the field."""


def write_parquet(df: pd.DataFrame, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    df.to_parquet(tmp, index=False)
    tmp.replace(path)
    return path


def write_json(obj, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=float) + "\n")
    tmp.replace(path)
    return path


def write_text(text: str, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def read_parquet(path: str | Path, required: Iterable[str] = ()) -> pd.DataFrame:
    """Read a stage's Parquet input and check that the columns it needs are there."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found (was the stage that writes it run?)")
    try:
        df = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several types for a corrupt file
        raise InputError(f"{path}: not a readable Parquet file ({e})") from e
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}; has {list(df.columns)}")
    return df


def read_shards(paths: Iterable[str | Path], required: Iterable[str] = ()) -> pd.DataFrame:
    required = list(required)
    return pd.concat([read_parquet(p, required) for p in paths], ignore_index=True)

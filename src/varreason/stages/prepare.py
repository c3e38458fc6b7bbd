"""Stage ``prepare``: write the train and test splits as Parquet.

Sources: ``synthetic`` (the embedded task), a local ``.parquet``/``.jsonl`` file, or a hub dataset
id, the last two read with ``datasets``. A file or dataset needs the columns ``question``,
``answer`` and ``trace`` (a reference trace); a ``split`` column, if present, picks test rows.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from varreason.io import InputError, write_parquet
from varreason.task import generate_questions

COLUMNS = ["question_id", "question", "trace", "answer"]


def _load_external(source: str, seed: int, n_test: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    import datasets

    path = Path(source)
    if path.suffix in (".parquet", ".jsonl", ".json"):
        if not path.exists():
            raise InputError(f"task.source: {source}: file not found")
        kind = "parquet" if path.suffix == ".parquet" else "json"
        ds = datasets.load_dataset(kind, data_files=str(path), split="train")
    else:
        ds = datasets.load_dataset(source, split="train")
    df = ds.to_pandas()
    missing = [c for c in ("question", "trace", "answer") if c not in df.columns]
    if missing:
        raise InputError(f"{source}: missing column(s) {missing}; has {list(df.columns)}")
    for col in ("question", "trace", "answer"):
        bad = df.index[df[col].isna() | (df[col].astype(str).str.len() == 0)].tolist()
        if col != "trace" and bad:
            raise InputError(f"{source}: row {bad[0]}: empty field {col!r}")
    if "question_id" not in df.columns:
        df["question_id"] = [f"q-{i:06d}" for i in range(len(df))]
    if "split" in df.columns:
        return df[df["split"] != "test"], df[df["split"] == "test"]
    shuffled = df.sample(frac=1.0, random_state=seed)
    return shuffled.iloc[n_test:], shuffled.iloc[:n_test]


def prepare(params: dict, train_out: str | Path, test_out: str | Path) -> tuple[int, int]:
    """Write ``train_out`` and ``test_out``; returns their row counts."""
    t = params["task"]
    if t["source"] == "synthetic":
        kw = dict(modulus=t["modulus"], min_ops=t["min_ops"], max_ops=t["max_ops"], max_merge=t["max_merge"])
        train = pd.DataFrame(generate_questions(t["n_train"], params["seed"] * 2 + 1, prefix="train", **kw))
        test = pd.DataFrame(generate_questions(t["n_test"], params["seed"] * 2 + 2, prefix="test", **kw))
        # no test question may also be a train question
        test = test[~test["question"].isin(set(train["question"]))]
    else:
        train, test = _load_external(t["source"], params["seed"], t["n_test"])
        train = train.head(t["n_train"])
    write_parquet(train.reset_index(drop=True), train_out)
    write_parquet(test.reset_index(drop=True), test_out)
    return len(train), len(test)

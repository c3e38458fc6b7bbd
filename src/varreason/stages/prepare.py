"""Stage ``prepare``: write the train and test splits as Parquet.

Sources: ``synthetic`` (the embedded task), ``synthetic-words`` (the same chains in words, for a
pretrained model: ``varreason.task_words``), a local ``.parquet``/``.jsonl``/``.json``/``.csv`` file
(``io.read_table``), or a hub dataset id (``datasets``), the last two mapped by a layout adapter (``varreason.data``:
Bespoke-Stratos/OpenThoughts, question/thought/solution, GSM8K/MATH question-answer). A ``split``
column, if present, picks test rows; else ``n_test`` rows are held out at random (seeded).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from varreason.data import load_task
from varreason.io import write_parquet
from varreason.task import generate_questions
from varreason.task_words import generate_word_questions


def _load_external(t: dict, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    df = load_task(t["source"], t.get("layout", "auto"), t.get("hub_split", "train"), t.get("hub_config"))
    if "split" in df.columns:
        return df[df["split"] != "test"].drop(columns="split"), df[df["split"] == "test"].drop(columns="split")
    shuffled = df.sample(frac=1.0, random_state=seed)
    return shuffled.iloc[t["n_test"] :], shuffled.iloc[: t["n_test"]]


def prepare(params: dict, train_out: str | Path, test_out: str | Path) -> tuple[int, int]:
    """Write ``train_out`` and ``test_out``; returns their row counts."""
    t = params["task"]
    if t["source"] == "synthetic":
        kw = dict(modulus=t["modulus"], min_ops=t["min_ops"], max_ops=t["max_ops"], max_merge=t["max_merge"])
        train = pd.DataFrame(generate_questions(t["n_train"], params["seed"] * 2 + 1, prefix="train", **kw))
        test = pd.DataFrame(generate_questions(t["n_test"], params["seed"] * 2 + 2, prefix="test", **kw))
        # no test question may also be a train question
        test = test[~test["question"].isin(set(train["question"]))]
        train["gold"], test["gold"] = train["answer"], test["answer"]
    elif t["source"] == "synthetic-words":
        kw = dict(min_ops=t["min_ops"], max_ops=t["max_ops"], max_merge=t["max_merge"])
        train = pd.DataFrame(generate_word_questions(t["n_train"], params["seed"] * 2 + 1, prefix="train", **kw))
        test = pd.DataFrame(generate_word_questions(t["n_test"], params["seed"] * 2 + 2, prefix="test", **kw))
        test = test[~test["question"].isin(set(train["question"]))]
    else:
        train, test = _load_external(t, params["seed"])
        train = train.head(t["n_train"])
    write_parquet(train.reset_index(drop=True), train_out)
    write_parquet(test.reset_index(drop=True), test_out)
    print(f"prepared {len(train)} train / {len(test)} test questions")
    return len(train), len(test)

"""Rows of the benchmark tables: cell values, case-insensitive columns, and the rows that need more
than a column each (OlympiadBench's filter, GPQA's and MMLU-Pro's shuffled options).

``varreason.benchmarks`` documents each benchmark's layout; this module holds the mechanics.
"""

from __future__ import annotations

import ast
import json
import math
import random
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from varreason.io import InputError

CHOICE_LETTERS = "ABCD"
CHOICE10_LETTERS = "ABCDEFGHIJ"


def is_missing(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    if isinstance(v, str) and not v.strip():
        return True
    if isinstance(v, (list, tuple, np.ndarray)) and len(v) == 0:
        return True
    return False


def scalar_text(v: Any) -> str:
    """Numbers as their plain text (27.0 -> "27"); strings stripped."""
    if isinstance(v, (bool, np.bool_)):
        return str(v)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return str(int(f)) if f.is_integer() else repr(f)
    return str(v).strip()


def strip_dollars(s: str) -> str:
    s = s.strip()
    if len(s) >= 2 and s.startswith("$") and s.endswith("$"):
        s = s.strip("$").strip()
    return s


def answer_list_text(v: Any) -> str:
    """OlympiadBench's final_answer: a list (or its string form) of $...$ answers -> "a, b"."""
    if isinstance(v, str):
        t = v.strip()
        if t.startswith("[") and t.endswith("]"):
            try:
                parsed = ast.literal_eval(t)
            except (ValueError, SyntaxError):
                try:
                    parsed = json.loads(t)
                except json.JSONDecodeError:
                    parsed = None
            if isinstance(parsed, list):
                v = parsed
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if isinstance(v, (list, tuple)):
        items = [strip_dollars(scalar_text(x)) for x in v if not is_missing(x)]
        return ", ".join(i for i in items if i)
    return strip_dollars(scalar_text(v))


class Columns:
    """Case-insensitive column lookup that names the source and the accepted names on failure."""

    def __init__(self, df: pd.DataFrame, source: str) -> None:
        self.df, self.source = df, source
        self.by_lower = {str(c).strip().lower(): c for c in df.columns}

    def has(self) -> str:
        return ", ".join(map(str, self.df.columns))

    def find(self, names: tuple[str, ...]) -> Any | None:
        for n in names:
            if n.lower() in self.by_lower:
                return self.by_lower[n.lower()]
        return None

    def require(self, names: tuple[str, ...]) -> Any:
        col = self.find(names)
        if col is None:
            accepted = " or ".join(repr(n) for n in names)
            raise InputError(f"{self.source}: missing column {accepted} (has: {self.has()})")
        return col

    def value(self, i: int, col: Any, text: Callable[[Any], str] = scalar_text) -> str:
        v = self.df[col].iloc[i]
        out = "" if is_missing(v) else text(v)
        if not out:
            raise InputError(f"{self.source}: row {i}: missing or empty column {str(col)!r} (has: {self.has()})")
        return out


def olympiad_keep(cols: Columns) -> np.ndarray:
    """Rows that are text-only, English, maths and open-ended, judged by the columns present."""
    df = cols.df
    keep = np.ones(len(df), dtype=bool)

    def lower(name: str) -> pd.Series | None:
        c = cols.find((name,))
        return None if c is None else df[c].map(lambda v: "" if is_missing(v) else str(v).lower())

    for name, test in (
        ("language", lambda s: s.str.contains("english") | s.eq("en") | s.eq("")),
        ("modality", lambda s: s.str.contains("text") | s.eq("")),
        ("subject", lambda s: s.str.contains("math") | s.eq("")),
        ("question_type", lambda s: ~s.str.contains("proof")),
    ):
        s = lower(name)
        if s is not None:
            keep &= test(s).to_numpy(dtype=bool)
    for c in df.columns:
        if re.fullmatch(r"image_\d+", str(c).strip().lower()):
            keep &= df[c].map(is_missing).to_numpy(dtype=bool)
    return keep


def gpqa_question(question: str, options: list[str], key: str, seed: int) -> tuple[str, str]:
    order = list(range(len(options)))
    random.Random(f"{seed}:{key}").shuffle(order)
    shuffled = [options[j] for j in order]
    letter = CHOICE_LETTERS[order.index(0)]  # options[0] is the correct answer
    lines = [f"{CHOICE_LETTERS[k]}) {opt}" for k, opt in enumerate(shuffled)]
    return question + "\n\n" + "\n".join(lines), letter


def options_list(v: Any) -> list[str]:
    """MMLU-Pro's options: a list, a NumPy array or its JSON/Python text; "N/A" padding dropped."""
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except json.JSONDecodeError:
            v = ast.literal_eval(v)
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if not isinstance(v, (list, tuple)):
        raise ValueError(f"not a list: {type(v).__name__}")
    return [scalar_text(o) for o in v if not is_missing(o) and scalar_text(o) != "N/A"]


def mmlu_pro_rows(cols: Columns, seed: int) -> list[dict]:
    """(raw id, question, answer, group) rows of MMLU-Pro, options shuffled per seed and question id."""
    q_col, o_col, id_col = cols.require(("question",)), cols.require(("options",)), cols.require(("question_id",))
    idx_col, letter_col, cat_col = cols.find(("answer_index",)), cols.find(("answer",)), cols.find(("category",))
    if idx_col is None and letter_col is None:
        raise InputError(f"{cols.source}: missing column 'answer_index' or 'answer' (has: {cols.has()})")
    rows = []
    for i in range(len(cols.df)):
        raw = cols.df[o_col].iloc[i]
        try:
            options = options_list(raw)
        except (ValueError, SyntaxError) as e:
            raise InputError(f"{cols.source}: row {i}: column {str(o_col)!r} is not a list of options ({e})") from e
        if not 2 <= len(options) <= 10:
            raise InputError(f"{cols.source}: row {i}: {len(options)} options; expected 2 to 10")
        if idx_col is not None:
            correct = int(cols.value(i, idx_col))
        else:
            correct = CHOICE10_LETTERS.index(cols.value(i, letter_col).upper()) if cols.value(i, letter_col) else -1
        if not 0 <= correct < len(options):
            raise InputError(f"{cols.source}: row {i}: answer {correct} is not one of its {len(options)} options")
        raw_id = cols.value(i, id_col)
        order = list(range(len(options)))
        random.Random(f"{seed}:{raw_id}").shuffle(order)
        lines = [f"{CHOICE10_LETTERS[k]}. {options[j]}" for k, j in enumerate(order)]
        question = cols.value(i, q_col) + "\n\nOptions:\n" + "\n".join(lines)
        group = cols.value(i, cat_col) if cat_col is not None else ""
        rows.append(dict(raw_id=raw_id, question=question, answer=CHOICE10_LETTERS[order.index(correct)], group=group))
    return rows

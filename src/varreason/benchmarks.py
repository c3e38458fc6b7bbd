"""Evaluation benchmarks: MATH500, AIME24, AIME25, AMC23, GPQA-Diamond and OlympiadBench.

``load_benchmark(name, source=None, seed=0)`` reads one benchmark from a local ``.parquet``,
``.jsonl``, ``.json`` or ``.csv`` file, or from a hub dataset id through ``datasets.load_dataset``
(``source=None``: the spec's default id; ``"owner/name:config"`` picks a config), and returns a
DataFrame with columns ``benchmark, question_id, question, answer, verifier`` (``verifier`` is the
``varreason.verify`` kind: ``"math"`` or ``"choice"``). ``question_id`` is ``<benchmark>/<id>``, the
source's id column where it has one, else the 0-based row number.

Column names are matched case-insensitively, accepting the layouts of the public versions:

- MATH500 (HuggingFaceH4/MATH-500, split test): ``problem``, ``answer``, ``unique_id``.
- AIME24 (HuggingFaceH4/aime_2024, split train; also Maxwell-Jia/AIME_2024, math-ai/aime24):
  ``problem``/``Problem``/``question``, ``answer``/``Answer``, ``id``/``ID``.
- AIME25 (math-ai/aime25, split test; also yentinglin/aime_2025, opencompass/AIME2025): the same.
- AMC23 (math-ai/amc23, split test): ``question``/``problem``, ``answer`` (numbers like ``27.0`` are
  written ``27``), ``id``.
- GPQA-Diamond (Idavidrein/gpqa, config gpqa_diamond, split train; gated on the hub; the CSV works
  too): ``Question``, ``Correct Answer``, ``Incorrect Answer 1..3``, ``Record ID``. The four options
  are shuffled with ``random.Random(f"{seed}:{record id}")`` (the question text when there is no id
  column; deterministic per seed, independent of row order and of PYTHONHASHSEED) and appended as
  ``A) ..`` to ``D) ..`` lines; the gold is the letter.
- OlympiadBench (Hothan/OlympiadBench, config OE_TO_maths_en_COMP, split train): ``question``,
  ``final_answer`` (a list, a NumPy array from Parquet or its string form; the ``$`` around each item
  are dropped and several answers are joined with ", ", which math-verify reads as a set), ``id``.
  Only text-only English maths open-ended rows are kept, judged by the ``language``, ``modality``,
  ``subject``, ``question_type`` and ``image_*`` columns where the file has them.

A bad source raises ``varreason.io.InputError`` naming the source, the row (0-based, counted in the
source before any filtering) and the column, e.g. ``aime24.jsonl: row 3: missing or empty column
'answer' (has: id, problem, answer)``; a missing column is named with the names accepted for it.

The evaluation protocol (``BenchmarkSpec``, the paper's): n samples per question AIME24, AIME25
and AMC23 32, GPQA-Diamond 8, MATH500 and OlympiadBench 2; temperature 0.7 and top_p 1.0 (no
nucleus truncation: the backends always sample with top_p 1.0); at most ``MAX_NEW_TOKENS`` = 38912
new tokens; a sample ends at the format's end-of-solution tag (``<|end_of_solution|>`` in the
reasoning format, the closing ``answer_suffix``; stage ``evaluate``) or the end-of-turn token. Each
question is also answered once greedily. Report avg@n (mean accuracy over the n samples) and pass@k
from ``estimators.pass_at_k``.

An ``evaluate.benchmarks`` entry (``benchmark_settings``) is null (the default hub id), a source (a
file or a hub id), or a mapping ``{source, n_samples, temperature, max_new_tokens}`` whose given keys
replace the protocol's for that benchmark (e.g. ``max_new_tokens`` for a model with a short
context); ``evaluate.n_samples``, ``evaluate.temperature`` and ``evaluate.max_new_tokens`` are the
held-out test split's and never apply to a benchmark.
"""

from __future__ import annotations

import ast
import json
import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from varreason.io import FILE_SUFFIXES, InputError, read_table

OUTPUT_COLUMNS = ["benchmark", "question_id", "question", "answer", "verifier"]
CHOICE_LETTERS = "ABCD"
MAX_NEW_TOKENS = 38912  # the paper's limit on new tokens per evaluation sample
SETTINGS = ("n_samples", "temperature", "max_new_tokens")  # what an evaluate.benchmarks mapping may replace


@dataclass(frozen=True)
class BenchmarkSpec:
    """One benchmark: where it lives, which columns hold what, how it is verified and sampled."""

    name: str
    hub_id: str
    split: str
    verifier: str  # a varreason.verify kind: "math" or "choice"
    question: tuple[str, ...]  # accepted column names (case-insensitive), first found wins
    answer: tuple[str, ...]
    ids: tuple[str, ...] = ("unique_id", "id", "question_id", "record id")
    config: str | None = None
    n_samples: int = 2
    temperature: float = 0.7
    top_p: float = 1.0  # documents the sampler: the backends always sample with top_p 1.0
    max_new_tokens: int = MAX_NEW_TOKENS
    incorrect: tuple[str, ...] = ()  # multiple choice: one column per wrong option
    description: str = ""


_Q = ("problem", "question")
BENCHMARKS: dict[str, BenchmarkSpec] = {
    "math500": BenchmarkSpec(
        "math500", "HuggingFaceH4/MATH-500", "test", "math", _Q, ("answer",), n_samples=2,
        description="500 MATH test problems (Lightman et al. split)",
    ),
    "aime24": BenchmarkSpec(
        "aime24", "HuggingFaceH4/aime_2024", "train", "math", _Q, ("answer",), n_samples=32,
        description="AIME 2024 I and II, 30 problems, integer answers 0-999",
    ),
    "aime25": BenchmarkSpec(
        "aime25", "math-ai/aime25", "test", "math", _Q, ("answer",), n_samples=32,
        description="AIME 2025 I and II, 30 problems, integer answers 0-999",
    ),
    "amc23": BenchmarkSpec(
        "amc23", "math-ai/amc23", "test", "math", _Q, ("answer",), n_samples=32,
        description="AMC 2023, 40 problems with numeric answers",
    ),
    "gpqa_diamond": BenchmarkSpec(
        "gpqa_diamond", "Idavidrein/gpqa", "train", "choice", ("question",), ("correct answer",),
        config="gpqa_diamond", n_samples=8,
        description="GPQA-Diamond, 198 graduate-level science questions, four options shuffled per seed",
        incorrect=("incorrect answer 1", "incorrect answer 2", "incorrect answer 3"),
    ),
    "olympiadbench": BenchmarkSpec(
        "olympiadbench", "Hothan/OlympiadBench", "train", "math", _Q, ("final_answer",),
        config="OE_TO_maths_en_COMP", n_samples=2,
        description="OlympiadBench open-ended text-only English maths competition problems (675)",
    ),
}  # fmt: skip
ALIASES = {
    "math-500": "math500", "math_500": "math500", "aime2024": "aime24", "aime_2024": "aime24",
    "aime2025": "aime25", "aime_2025": "aime25", "amc2023": "amc23", "amc": "amc23", "gpqa": "gpqa_diamond",
    "gpqa-diamond": "gpqa_diamond", "gpqa_d": "gpqa_diamond", "olympiad": "olympiadbench",
    "olympiad_bench": "olympiadbench",
}  # fmt: skip


def get_spec(name: str) -> BenchmarkSpec:
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; known: {sorted(BENCHMARKS)}")
    return BENCHMARKS[key]


def benchmark_settings(name: str, entry: str | dict | None) -> tuple[str | None, BenchmarkSpec]:
    """(source, spec) of one ``evaluate.benchmarks`` entry: null, a source, or a mapping.

    A mapping's ``source`` (absent or null: the default hub id) is the source, and its
    ``n_samples``, ``temperature`` and ``max_new_tokens`` (where given and not null) replace the
    protocol's in the returned spec.
    """
    spec = get_spec(name)
    if entry is None or isinstance(entry, str):
        return entry, spec
    if not isinstance(entry, dict):
        raise InputError(f"evaluate.benchmarks.{name}: expected null, a file or hub id, or a mapping, got {entry!r}")
    unknown = sorted(set(entry) - {"source", *SETTINGS})
    if unknown:
        raise InputError(f"evaluate.benchmarks.{name}: unknown key(s) {unknown}; known: source, {', '.join(SETTINGS)}")
    overrides = {k: entry[k] for k in SETTINGS if entry.get(k) is not None}
    return entry.get("source"), replace(spec, **overrides)


# ------------------------------------------------------------------------------------------- reading


def _looks_like_file(source: str) -> bool:
    return Path(source).suffix.lower() in FILE_SUFFIXES or Path(source).exists()


def _load_hub(source: str, spec: BenchmarkSpec) -> pd.DataFrame:
    import datasets

    repo, _, config = source.partition(":")
    config = config or (spec.config if repo == spec.hub_id else None)
    try:
        dd = datasets.load_dataset(repo, config)
    except Exception as e:  # no network, gated dataset, unknown config, ...
        raise InputError(f"{source}: cannot load from the hub ({type(e).__name__}: {e})") from e
    if isinstance(dd, datasets.Dataset):
        return dd.to_pandas()
    splits = list(dd.keys())
    if spec.split in dd:
        return dd[spec.split].to_pandas()
    if len(splits) == 1:
        return dd[splits[0]].to_pandas()
    raise InputError(f"{source}: no split {spec.split!r} and several others {splits}; name a file instead")


# ------------------------------------------------------------------------------------ value handling


def _is_missing(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    if isinstance(v, str) and not v.strip():
        return True
    if isinstance(v, (list, tuple, np.ndarray)) and len(v) == 0:
        return True
    return False


def _scalar_text(v: Any) -> str:
    """Numbers as their plain text (27.0 -> "27"); strings stripped."""
    if isinstance(v, (bool, np.bool_)):
        return str(v)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return str(int(f)) if f.is_integer() else repr(f)
    return str(v).strip()


def _strip_dollars(s: str) -> str:
    s = s.strip()
    if len(s) >= 2 and s.startswith("$") and s.endswith("$"):
        s = s.strip("$").strip()
    return s


def _answer_list_text(v: Any) -> str:
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
        items = [_strip_dollars(_scalar_text(x)) for x in v if not _is_missing(x)]
        return ", ".join(i for i in items if i)
    return _strip_dollars(_scalar_text(v))


class _Columns:
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

    def value(self, i: int, col: Any, text: Callable[[Any], str] = _scalar_text) -> str:
        v = self.df[col].iloc[i]
        out = "" if _is_missing(v) else text(v)
        if not out:
            raise InputError(f"{self.source}: row {i}: missing or empty column {str(col)!r} (has: {self.has()})")
        return out


# ---------------------------------------------------------------------------------------- benchmarks


def _olympiad_keep(cols: _Columns) -> np.ndarray:
    """Rows that are text-only, English, maths and open-ended, judged by the columns present."""
    df = cols.df
    keep = np.ones(len(df), dtype=bool)

    def lower(name: str) -> pd.Series | None:
        c = cols.find((name,))
        return None if c is None else df[c].map(lambda v: "" if _is_missing(v) else str(v).lower())

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
            keep &= df[c].map(_is_missing).to_numpy(dtype=bool)
    return keep


def _gpqa_question(question: str, options: list[str], key: str, seed: int) -> tuple[str, str]:
    order = list(range(len(options)))
    random.Random(f"{seed}:{key}").shuffle(order)
    shuffled = [options[j] for j in order]
    letter = CHOICE_LETTERS[order.index(0)]  # options[0] is the correct answer
    lines = [f"{CHOICE_LETTERS[k]}) {opt}" for k, opt in enumerate(shuffled)]
    return question + "\n\n" + "\n".join(lines), letter


def benchmark_frame(df: pd.DataFrame, spec: BenchmarkSpec, source: str, *, seed: int = 0) -> pd.DataFrame:
    """Map one source table to the benchmark layout (``OUTPUT_COLUMNS``), checking every kept row."""
    df = df.reset_index(drop=True)
    cols = _Columns(df, source)
    q_col = cols.require(spec.question)
    a_col = cols.require(spec.answer)
    wrong = [cols.require((n,)) for n in spec.incorrect]
    id_col = cols.find(spec.ids)

    rows_idx = np.arange(len(df))
    if spec.name == "olympiadbench":
        rows_idx = rows_idx[_olympiad_keep(cols)]
    if len(rows_idx) == 0:
        what = "text-only English maths " if spec.name == "olympiadbench" else ""
        raise InputError(f"{source}: no {what}rows")

    answer_text = _answer_list_text if spec.name == "olympiadbench" else _scalar_text
    out: list[dict[str, str]] = []
    seen: dict[str, int] = {}
    for i in rows_idx:
        i = int(i)
        raw_id = cols.value(i, id_col) if id_col is not None else str(i)
        question = cols.value(i, q_col)
        answer = cols.value(i, a_col, answer_text)
        if spec.verifier == "choice":
            options = [answer] + [cols.value(i, c) for c in wrong]
            key = raw_id if id_col is not None else question
            question, answer = _gpqa_question(question, options, key, seed)
        qid = f"{spec.name}/{raw_id}"
        if qid in seen:
            raise InputError(f"{source}: row {i}: duplicate id {raw_id!r} (also row {seen[qid]})")
        seen[qid] = i
        out.append(dict(benchmark=spec.name, question_id=qid, question=question, answer=answer))
    result = pd.DataFrame(out, columns=OUTPUT_COLUMNS[:-1])
    result["verifier"] = spec.verifier
    return result[OUTPUT_COLUMNS]


def load_benchmark(name: str, source: str | None = None, *, seed: int = 0) -> pd.DataFrame:
    """One benchmark as ``benchmark, question_id, question, answer, verifier`` rows.

    ``source``: a local ``.parquet``/``.jsonl``/``.json``/``.csv`` file, a hub dataset id
    (``"owner/name"`` or ``"owner/name:config"``), or None for the spec's default hub id. ``seed``
    only matters for GPQA-Diamond (option order).
    """
    spec = get_spec(name)
    src = spec.hub_id if source is None else str(source)
    if _looks_like_file(src):
        df = read_table(src)
    else:
        df = _load_hub(src, spec)
    return benchmark_frame(df, spec, src, seed=seed)

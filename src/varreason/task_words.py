"""The synthetic task in words (``task.source: synthetic-words``): the learning signal of the real-model run.

The same chain as the embedded task (``varreason.task``), written as text a pretrained model reads:
"Start with 7. Add 5, subtract 3, then add 8. What number do you end with?" The reference trace
is again *coarse*: an annotator merges 1..``max_merge`` operations into each step
("7 + 5 - 3 = 9." then "9 + 8 = 17."); one operation per step is the fine trace a small model gets
right more often. The gold is the final number, checked by the math verifier (the answer section
says "The final number is $\\boxed{17}$.").

Simplifications: no modulus (plain integers; the start is 1..``max_start``, each operand 1..9,
values may go below zero), + and - only, and the same seeded generator for train and test with
different seeds (a test question that is also a train question is dropped).
"""

from __future__ import annotations

import numpy as np

ANSWER = "The final number is $\\boxed{{{value}}}$."
_VERB = {"+": "add", "-": "subtract"}


def _values(start: int, ops: list[tuple[str, int]]) -> list[int]:
    values, v = [], start
    for sign, a in ops:
        v = v + a if sign == "+" else v - a
        values.append(v)
    return values


def question_text(start: int, ops: list[tuple[str, int]]) -> str:
    """E.g. "Start with 7. Add 5, subtract 3, then add 8. What number do you end with?"."""
    words = [f"{_VERB[s]} {a}" for s, a in ops]
    chain = ", ".join(words[:-1]) + f", then {words[-1]}" if len(words) > 1 else words[0]
    return f"Start with {start}. {chain[0].upper()}{chain[1:]}. What number do you end with?"


def trace_text(start: int, ops: list[tuple[str, int]], step_sizes: list[int]) -> str:
    """Steps of ``step_sizes`` operations each, one line per step: "7 + 5 - 3 = 9."."""
    values, lines, i, v = _values(start, ops), [], 0, start
    for size in step_sizes:
        terms = " ".join(f"{s} {a}" for s, a in ops[i : i + size])
        lines.append(f"{v} {terms} = {values[i + size - 1]}.")
        v = values[i + size - 1]
        i += size
    return "\n".join(lines)


def generate_word_questions(
    n: int, seed: int, min_ops: int, max_ops: int, max_merge: int, prefix: str, max_start: int = 20
) -> list[dict]:
    """``n`` questions in the prepared layout (question_id, question, trace, answer, gold), seeded."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        n_ops = int(rng.integers(min_ops, max_ops + 1))
        start = int(rng.integers(1, max_start + 1))
        ops = [("+" if rng.random() < 0.5 else "-", int(rng.integers(1, 10))) for _ in range(n_ops)]
        sizes, left = [], n_ops
        while left:
            sizes.append(min(left, int(rng.integers(1, max_merge + 1))))
            left -= sizes[-1]
        final = _values(start, ops)[-1]
        rows.append(
            {
                "question_id": f"{prefix}-{i:06d}",
                "question": question_text(start, ops),
                "trace": trace_text(start, ops, sizes),
                "answer": ANSWER.format(value=final),
                "gold": str(final),
                "n_ops": n_ops,
            }
        )
    return rows


def fine_trace_text(start: int, ops: list[tuple[str, int]]) -> str:
    """The finest correct trace: one operation per step."""
    return trace_text(start, ops, [1] * len(ops))

import collections
import itertools
import re

from varreason.prompting import Prompter, PromptFormat, split_completion
from varreason.task import (
    chain_answer,
    chain_values,
    fine_trace,
    generate_questions,
    parse_question,
    trace_check,
)
from varreason.verify import verify


def test_chain_values_and_answer():
    values = chain_values(3, [("+", 4), ("-", 9), ("+", 8)], 10)
    assert values == [7, 8, 6]
    assert chain_answer(values) == "68"  # final value, then the largest value reached


def test_generated_reference_traces_are_correct_and_coarse():
    rows = generate_questions(300, seed=5, modulus=10, min_ops=2, max_ops=5, max_merge=3, prefix="t")
    assert rows == generate_questions(300, seed=5, modulus=10, min_ops=2, max_ops=5, max_merge=3, prefix="t")
    merged = 0
    for r in rows:
        start, ops = parse_question(r["question"])
        assert 2 <= len(ops) == r["n_ops"] <= 5
        ok, steps = trace_check(r["question"], r["trace"], 10)
        assert ok, r
        assert 1 <= steps <= len(ops)
        merged += steps < len(ops)
        assert r["answer"] == chain_answer(chain_values(start, ops, 10))
        assert trace_check(r["question"], fine_trace(r["question"], 10), 10) == (True, len(ops))
    assert merged > 100  # most reference traces are coarse


def test_trace_check_rejects_wrong_or_malformed_traces():
    q = "3+4-9+8"
    assert trace_check(q, "+4=7-9=8+8=6", 10) == (True, 3)
    assert trace_check(q, "+4-9=8+8=6", 10) == (True, 2)
    assert trace_check(q, "+4=7-9=9+8=6", 10)[0] is False  # a wrong intermediate value
    assert trace_check(q, "+4=7-9=8", 10)[0] is False  # stops early
    assert trace_check(q, "+4=7+9=8+8=6", 10)[0] is False  # copies the wrong operation
    assert trace_check(q, "+4=7-9=8+8=6+", 10)[0] is False
    assert trace_check(q, "", 10)[0] is False


def test_answer_extraction_and_verifier():
    assert split_completion("+4=7A68", PromptFormat()) == ("+4=7", "68")
    assert split_completion("+4=7", PromptFormat())[1] is None
    assert verify("68", "68", "exact") and not verify("68", "6", "exact") and not verify("68", None, "exact")


def test_only_the_posterior_prompt_contains_the_reference_answer(tokenizer):
    tpl = Prompter(PromptFormat(), tokenizer)
    for r in generate_questions(200, seed=1, modulus=10, min_ops=2, max_ops=4, max_merge=3, prefix="t"):
        hinted = tpl.posterior(r["question"], r["answer"])
        plain = tpl.reasoner(r["question"])
        assert r["answer"] in hinted and hinted.startswith(plain[:-1])
        # the reasoner prompt is the question alone: the answer can only appear inside the question text
        assert plain == f"Q{r['question']}T"


def _independent_answer(question: str, modulus: int) -> str:
    """A second evaluator: the running sums of the signed operands, reduced mod p at the end."""
    terms = [int(t) for t in re.findall(r"[+-]?\d", question)]
    running = list(itertools.accumulate(terms))[1:]
    values = [v % modulus for v in running]
    return f"{values[-1]}{max(values)}"


def test_answers_agree_with_an_independent_evaluator():
    rows = generate_questions(2000, seed=11, modulus=10, min_ops=2, max_ops=4, max_merge=3, prefix="t")
    assert all(r["answer"] == _independent_answer(r["question"], 10) for r in rows)
    # two tokens, spread out: the best constant guess ("99": the final value is the largest) gets ~11%,
    # a guess drawn from the answers' own distribution ~3.5%
    counts = collections.Counter(r["answer"] for r in rows)
    assert all(len(a) == 2 for a in counts) and len(counts) > 40
    assert counts.most_common(1)[0][1] / len(rows) < 0.12
    assert sum((c / len(rows)) ** 2 for c in counts.values()) < 0.05


def test_no_operation_collapses_states_so_a_wrong_step_changes_the_final_value():
    rows = generate_questions(500, seed=12, modulus=10, min_ops=2, max_ops=4, max_merge=3, prefix="t")
    for r in rows:
        start, ops = parse_question(r["question"])
        for sign, a in ops:
            # each operation is a permutation of Z_p: no two values land on the same result
            assert sorted(chain_values(x, [(sign, a)], 10)[0] for x in range(10)) == list(range(10))
        values = chain_values(start, ops, 10)
        for i in range(len(ops) - 1):
            for wrong in set(range(10)) - {values[i]}:
                # a trace that writes a wrong value at step i and continues correctly from it
                assert chain_values(wrong, ops[i + 1 :], 10)[-1] != values[-1]


def test_word_chains_have_coarse_correct_traces_and_integer_golds():
    from varreason.task_words import fine_trace_text, generate_word_questions, trace_text

    rows = generate_word_questions(300, seed=3, min_ops=2, max_ops=4, max_merge=3, prefix="train")
    assert rows == generate_word_questions(300, seed=3, min_ops=2, max_ops=4, max_merge=3, prefix="train")
    merged = 0
    for r in rows:
        start = int(re.match(r"Start with (\d+)\.", r["question"]).group(1))
        found = re.findall(r"(add|subtract) (\d)", r["question"], flags=re.IGNORECASE)
        ops = [("+" if v.lower() == "add" else "-", int(a)) for v, a in found]
        assert len(ops) == r["n_ops"] and 2 <= len(ops) <= 4
        # every step's equation holds, and the last value is the gold
        for line in r["trace"].split("\n"):
            lhs, rhs = line.rstrip(".").split(" = ")
            assert eval(lhs) == int(rhs)  # noqa: S307 - our own arithmetic text
        assert int(r["trace"].rsplit("= ", 1)[1].rstrip(".")) == int(r["gold"])
        assert r["answer"] == f"The final number is $\\boxed{{{r['gold']}}}$."
        assert r["gold"] == str(start + sum(a if s == "+" else -a for s, a in ops))
        assert fine_trace_text(start, ops).count("\n") == len(ops) - 1
        merged += r["trace"].count("\n") < len(ops) - 1
    assert merged > 100  # most reference traces merge operations: coarser than the fine trace
    assert trace_text(7, [("+", 5), ("-", 3), ("+", 8)], [2, 1]) == "7 + 5 - 3 = 9.\n9 + 8 = 17."

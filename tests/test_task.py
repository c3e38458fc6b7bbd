from varreason.task import (
    Templates,
    chain_answer,
    chain_values,
    extract_answer,
    fine_trace,
    generate_questions,
    is_correct,
    parse_question,
    trace_check,
)


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
    assert extract_answer("+4=7A68") == "68"
    assert extract_answer("+4=7") is None
    assert is_correct("68", "68") and not is_correct("6", "68") and not is_correct(None, "68")


def test_only_the_posterior_prompt_contains_the_reference_answer():
    tpl = Templates()
    for r in generate_questions(200, seed=1, modulus=10, min_ops=2, max_ops=4, max_merge=3, prefix="t"):
        hinted = tpl.posterior(r["question"], r["answer"])
        plain = tpl.reasoner(r["question"])
        assert r["answer"] in hinted and hinted.startswith(plain[:-1])
        # the reasoner prompt is the question alone: the answer can only appear inside the question text
        assert plain == f"Q{r['question']}T"

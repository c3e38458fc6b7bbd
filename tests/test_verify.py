"""Answer verification: math-verify equivalences, choice letters, exact match, timeouts and threads."""

from __future__ import annotations

import csv
import threading
import time
from pathlib import Path

import pytest

from varreason.verify import (
    VerifierPool,
    check_choice,
    check_exact,
    check_math,
    extract_choice,
    verify,
    verify_many,
    verify_math,
)
from varreason.verify_extract import prediction_answer, strip_units

# (gold, prediction, expected). Decisions stated here: numbers agree to 6 decimal places (1/3 vs
# 0.333333 is right, vs 0.33 wrong; 2*pi vs 6.2832 wrong); "10\%" means 10 (the % sign is dropped,
# MATH's convention), so 0.1 is wrong; intervals and ordered pairs must match exactly; the last
# \boxed{} is the answer even when other numbers appear in the text.
MATH_CASES = [
    # fractions and decimals
    ("\\frac{1}{2}", "... so the answer is \\boxed{\\frac12}.", True),
    ("1/2", "The answer is $0.5$.", True),
    ("0.5", "We get \\boxed{\\frac{1}{2}}", True),
    ("\\frac{1}{2}", "\\boxed{1/2}", True),
    ("0.25", "so $\\boxed{\\frac{1}{4}}$", True),
    ("2.50", "\\boxed{2.5}", True),
    ("1/3", "\\boxed{0.333333}", True),
    ("1/3", "\\boxed{0.33}", False),
    ("1/2", "\\boxed{1/3}", False),
    # LaTeX: roots, pi, intervals, polynomials
    ("3\\sqrt{2}", "Thus $\\boxed{\\sqrt{18}}$.", True),
    ("3\\sqrt{2}", "\\boxed{4.242640687}", True),
    ("3\\sqrt{2}", "\\boxed{3}", False),
    ("\\pi/2", "the angle is \\boxed{\\frac{\\pi}{2}}", True),
    ("\\dfrac{\\pi}{3}", "It is $\\frac{\\pi}{3}$.", True),
    ("2\\pi", "about $6.2832$", False),
    ("[0,1)", "The interval is $[0, 1)$.", True),
    ("[0,1)", "The interval is $(0, 1)$.", False),
    ("x^2+1", "\\boxed{1+x^2}", True),
    ("x^2+1", "\\boxed{x^2+2}", False),
    # integers with commas, units, percent
    ("1,000", "so \\boxed{1000}", True),
    ("1000", "the total is \\boxed{1,000}", True),
    ("1000", "\\boxed{100}", False),
    ("5\\text{ cm}", "\\boxed{5}", True),
    ("5", "\\boxed{5\\text{ cm}}", True),
    ("10\\%", "\\boxed{10\\%}", True),
    ("10\\%", "\\boxed{10}", True),
    ("10\\%", "\\boxed{0.1}", False),
    ("-3", "\\boxed{3}", False),
    # sets and tuples
    ("\\{1,2\\}", "\\boxed{\\{2,1\\}}", True),
    ("2,3", "The roots are \\boxed{3, 2}", True),
    ("(1,2)", "\\boxed{(1,2)}", True),
    ("(1,2)", "\\boxed{(2,1)}", False),
    # boxed gold, text around the answer, no answer
    ("\\boxed{204}", "Answer: \\boxed{204}", True),
    ("204", "Answer: 204", True),
    ("17", "I first thought 17, but it is \\boxed{18}", False),
    ("18", "\\boxed{17}, or rather \\boxed{18}", False),  # several boxes are read as a set: hedging fails
    ("17,18", "\\boxed{17} or \\boxed{18}", True),
    ("17", "no answer here", False),
    ("17", "", False),
    ("17", None, False),
]

CHOICE_CASES = [
    ("C", "so the answer is (C).", True),
    ("B", "\\boxed{B}", True),
    ("D", "A good idea. The answer is D", True),
    ("A", "I pick \\boxed{\\text{(A)}}, not B", True),
    ("C", "between A and B, I choose C", True),
    ("(b)", "Answer: B", True),
    ("A", "The answer is (B)", False),
    ("A", "\\boxed{B}. A is tempting but wrong", False),
    ("C", "nothing here", False),
    ("C", None, False),
]

EXACT_CASES = [("42", " 42 \n", True), ("42", "42.0", False), ("x", "X", False), ("42", None, False)]

# The equivalence table: one row per (gold, prediction) with the expected verdict and a class name
# (bare LaTeX, prefix-wrong, units, several boxes, ...); many rows must be judged wrong.
FIXTURE = Path(__file__).parent / "fixtures" / "verifier_cases.csv"
with FIXTURE.open(newline="", encoding="utf-8") as f:
    FIXTURE_CASES = [
        pytest.param(
            r["kind"],
            r["gold"],
            r["prediction"],
            {"True": True, "False": False}[r["expected"]],
            id=f"row{n}-{r['class']}",
        )
        for n, r in enumerate(csv.DictReader(f), start=1)
    ]

# Answers the real SmolLM2-135M wrote (its instruct model's free text, and after SFT on the words
# task), with a grader's verdict; rows marked known_wrong are ones the verifier still gets wrong.
REAL_ANSWERS = Path(__file__).parent / "fixtures" / "smollm2_answers.csv"
with REAL_ANSWERS.open(newline="", encoding="utf-8") as f:
    REAL_CASES = [
        pytest.param(
            r["gold"],
            r["prediction"],
            r["expected"] == "True",
            r["known_wrong"] == "yes",
            id=f"real{n}-{r['gold']}",
        )
        for n, r in enumerate(csv.DictReader(f), start=1)
    ]

# (10^7)! makes sympy compute for minutes (bounded memory, under 100 MB): a real stuck check.
HANG = "\\boxed{(10^{7})!}"


@pytest.mark.parametrize("gold,prediction,expected", MATH_CASES)
def test_math_equivalence_table(gold, prediction, expected):
    assert check_math(gold, prediction) is expected


@pytest.mark.parametrize("kind,gold,prediction,expected", FIXTURE_CASES)
def test_fixture_equivalence_table(kind, gold, prediction, expected):
    assert verify(gold, prediction, kind, timeout_s=None) is expected


@pytest.mark.parametrize("gold,prediction,expected,known_wrong", REAL_CASES)
def test_answers_the_real_model_wrote(gold, prediction, expected, known_wrong):
    # a known-wrong row must stay wrong (strict): the day it is fixed, the table says so
    assert (check_math(gold, prediction) is expected) is not known_wrong


def test_fixture_table_has_many_wrong_rows_and_every_class():
    verdicts = [p.values[3] for p in FIXTURE_CASES]
    assert len(verdicts) >= 60 and verdicts.count(False) >= 30
    classes = {p.id.split("-", 1)[1] for p in FIXTURE_CASES}  # ids are "row<n>-<class>"
    assert {"bare-latex", "prefix-wrong", "units", "several-boxes", "sentence", "choice"} <= classes


@pytest.mark.parametrize(
    "prediction,answer",
    [
        ("so the answer is \\frac{1}{2}.", "\\frac{1}{2}"),
        ("so we get x = 22.", "x = 22"),
        ("We get $x = 2$, so y = 2\\sqrt{3}.", "y = 2\\sqrt{3}"),  # the later bare run wins
        ("The answer is **7**. Check: 3 + 4 = 7", "7"),  # first candidate after the last "answer is"
        ("It costs 12 dollars a day", "12"),
        ("I tried \\boxed{3}", "3"),
        ("The answer is unclear.", None),
        ("nothing to see", None),
    ],
)
def test_prediction_answer_extraction(prediction, answer):
    assert prediction_answer(prediction) == answer


def test_strip_units_keeps_variables():
    assert strip_units("5\\text{ cm}^2") == "5"
    assert strip_units("24 square units") == "24"
    assert strip_units("2ab") == "2ab"  # math-verify's unit list would read 2
    assert strip_units("3 + 2\\mathrm{i}") == "3 + 2\\mathrm{i}"
    assert strip_units("\\text{even}") == "\\text{even}"


@pytest.mark.parametrize("gold,prediction,expected", CHOICE_CASES)
def test_choice_table(gold, prediction, expected):
    assert check_choice(gold, prediction) is expected
    assert verify(gold, prediction, "choice") is expected


@pytest.mark.parametrize("gold,prediction,expected", EXACT_CASES)
def test_exact_table(gold, prediction, expected):
    assert check_exact(gold, prediction) is expected
    assert verify(gold, prediction, "exact") is expected


def test_extract_choice_priorities():
    assert extract_choice("A) 1\nB) 2\nC) 3\nD) 4\nFinal: \\boxed{D}") == "D"
    assert extract_choice("The answer is **C**, since B fails") == "C"
    assert extract_choice("no letters") is None
    with pytest.raises(ValueError, match="gold"):
        check_choice("E", "E")


def test_unknown_kind_is_an_error():
    with pytest.raises(ValueError, match="unknown verifier kind"):
        verify("1", "1", "fuzzy")
    with pytest.raises(ValueError, match="unknown verifier kind"):
        verify_many(["1"], ["1"], kind=["fuzzy"])


def test_verify_many_matches_the_tables_in_worker_processes():
    golds = [g for g, _, _ in MATH_CASES] + [g for g, _, _ in CHOICE_CASES] + [g for g, _, _ in EXACT_CASES]
    preds = [p for _, p, _ in MATH_CASES] + [p for _, p, _ in CHOICE_CASES] + [p for _, p, _ in EXACT_CASES]
    kinds = ["math"] * len(MATH_CASES) + ["choice"] * len(CHOICE_CASES) + ["exact"] * len(EXACT_CASES)
    expected = [e for *_, e in MATH_CASES + CHOICE_CASES + EXACT_CASES]
    fixture = [p.values for p in FIXTURE_CASES]
    golds += [g for _, g, _, _ in fixture]
    preds += [p for _, _, p, _ in fixture]
    kinds += [k for k, _, _, _ in fixture]
    expected += [e for *_, e in fixture]
    assert verify_many(golds, preds, kind=kinds, timeout_s=30, workers=2) == expected


def test_stuck_check_times_out_and_the_rest_are_still_checked():
    golds = ["1", "1/2", "3\\sqrt{2}", "7", "1/2", "2"]
    preds = [HANG, "\\boxed{0.5}", "\\boxed{\\sqrt{18}}", "\\boxed{8}", "\\boxed{0.5}", "so \\boxed{2}"]
    timeout_s = 1.5
    with VerifierPool(2) as pool:
        assert pool.map(["math"], ["1"], ["1"], timeout_s=60) == [True]  # workers warm: time only checks
        t0 = time.monotonic()
        got = verify_many(golds, preds, timeout_s=timeout_s, pool=pool)
        elapsed = time.monotonic() - t0
        assert got == [False, True, True, False, True, True]
        assert pool.n_killed == 1
        assert elapsed < timeout_s + 6.0, elapsed
        # the killed worker was replaced: the pool keeps working, and times out again when stuck
        assert pool.map(["math", "math"], ["4", "1"], ["\\boxed{4}", HANG], timeout_s=timeout_s) == [True, False]
        assert pool.n_killed == 2


def test_verify_math_single_call_times_out():
    t0 = time.monotonic()
    assert verify_math("1", HANG, timeout_s=1.0) is False
    assert verify_math("1/2", "\\boxed{0.5}") is True  # the shared worker was replaced
    assert time.monotonic() - t0 < 60


def test_verify_works_from_a_non_main_thread():
    out: dict[str, object] = {}

    def work():
        try:
            out["shared"] = verify("\\frac{1}{2}", "so \\boxed{0.5}", "math")
            out["wrong"] = verify_math("2", "\\boxed{3}")
            out["inline"] = verify_math("\\pi", "$\\pi$", timeout_s=None)
            out["many"] = verify_many(["1", "2"], [HANG, "\\boxed{2}"], timeout_s=1.0)
        except BaseException as e:  # surface the error in the main thread
            out["error"] = e

    t = threading.Thread(target=work)
    t.start()
    t.join(timeout=120)
    assert not t.is_alive()
    assert "error" not in out, out.get("error")
    assert out == {"shared": True, "wrong": False, "inline": True, "many": [False, True]}


def test_verify_many_checks_lengths():
    with pytest.raises(ValueError, match="2 golds but 1 predictions"):
        verify_many(["1", "2"], ["1"])
    assert verify_many([], []) == []


def test_verify_many_inside_a_spawned_pool_worker():
    """Workers are plain subprocesses, so a multiprocessing (spawn) worker can run its own checks."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as ex:
        got = ex.submit(verify_many, ["1", "1/2"], [HANG, "\\boxed{0.5}"], timeout_s=1.0).result(timeout=120)
    assert got == [False, True]

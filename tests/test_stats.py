"""The claims report's statistics against tables, brute-force enumeration and simulation."""

import itertools
import math

import numpy as np
import pytest

from varreason.stats import (
    BIN_LABELS,
    bin_shares,
    difficulty_bin,
    mean_ci,
    paired_difference,
    t_cdf,
    t_quantile,
)


@pytest.mark.parametrize(
    "df, q975",
    [(1, 12.7062), (2, 4.3027), (4, 2.7764), (9, 2.2622), (30, 2.0423), (1000, 1.9623)],
)
def test_t_quantile_matches_printed_tables(df, q975):
    assert t_quantile(0.975, df) == pytest.approx(q975, abs=2e-4)
    assert t_quantile(0.025, df) == pytest.approx(-q975, abs=2e-4)
    assert t_cdf(q975, df) == pytest.approx(0.975, abs=1e-5)


def test_t_cdf_with_one_degree_of_freedom_is_the_cauchy_cdf():
    for x in (-3.0, -0.5, 0.0, 0.7, 5.0):
        assert t_cdf(x, 1) == pytest.approx(0.5 + math.atan(x) / math.pi, abs=1e-7)


def test_mean_ci_by_hand_and_with_one_value():
    ci = mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    se = math.sqrt(2.5 / 5)  # sample variance 2.5
    assert ci["mean"] == 3.0 and ci["se"] == pytest.approx(se)
    assert ci["hi"] - ci["mean"] == pytest.approx(2.7764 * se, rel=1e-4)
    assert mean_ci([0.4])["se"] is None


def test_mean_ci_covers_the_true_mean_95_percent_of_the_time_with_five_seeds():
    # brute force: many experiments of 5 normal draws; a z-interval (1.96) would cover only ~88%
    rng = np.random.default_rng(0)
    draws = rng.normal(0.3, 2.0, size=(20000, 5))
    covered = 0
    for row in draws:
        ci = mean_ci(row)
        covered += ci["lo"] <= 0.3 <= ci["hi"]
    assert covered / len(draws) == pytest.approx(0.95, abs=0.006)


def test_paired_difference_equals_brute_force_on_per_question_outcomes():
    rng = np.random.default_rng(1)
    a = (rng.random(300) < 0.45).astype(float)
    b = (rng.random(300) < 0.35).astype(float)
    out = paired_difference(a, b)
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    mean = sum(diffs) / len(diffs)
    var = sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1)
    assert out["mean"] == pytest.approx(mean)
    assert out["se"] == pytest.approx(math.sqrt(var / len(diffs)))
    assert out["wins"] == sum(d > 0 for d in diffs) and out["losses"] == sum(d < 0 for d in diffs)
    z = mean / math.sqrt(var / len(diffs))
    assert out["p_value"] == pytest.approx(math.erfc(abs(z) / math.sqrt(2)))


def test_paired_p_value_agrees_with_an_exact_sign_flip_enumeration():
    # under H0 each difference's sign is a coin flip: enumerate all 2^n sign patterns
    d = np.array([0.5, 1.0, 1.0, -0.25, 0.75, 1.0, 0.5, 0.0, 1.0, 0.25, -0.5, 1.0, 0.75, 0.5])
    observed = abs(d.mean())
    extreme = sum(
        abs((d * np.array(signs)).mean()) >= observed - 1e-12 for signs in itertools.product((1, -1), repeat=len(d))
    )
    exact = extreme / 2 ** len(d)
    approx = paired_difference(d, np.zeros_like(d))["p_value"]
    assert exact < 0.01 and approx < 0.01
    assert approx == pytest.approx(exact, abs=0.005)


def test_paired_difference_of_identical_models_is_zero_with_p_one():
    a = np.array([1.0, 0.0, 1.0, 1.0])
    out = paired_difference(a, a)
    assert out["mean"] == 0 and out["p_value"] == 1.0
    with pytest.raises(ValueError):
        paired_difference([1.0, 0.0], [1.0])


def test_difficulty_bins_edges_and_shares():
    acc = [0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0, 0.2499]
    assert difficulty_bin(acc).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 3, 0]
    bins = difficulty_bin(acc)
    assert bin_shares(bins) == pytest.approx([0.3, 0.2, 0.2, 0.3])
    # weight mass: a question's traces count by their training weight
    assert bin_shares(bins, [1, 1, 0, 0, 0, 0, 0, 0, 2, 0]) == pytest.approx([0.5, 0, 0, 0.5])
    assert len(BIN_LABELS) == 4
    with pytest.raises(ValueError):
        difficulty_bin([1.2])


def test_holm_against_a_hand_computed_example():
    from varreason.stats import holm

    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> made monotone: 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([0.02]) == pytest.approx([0.02]) and holm([]) == []


def test_sign_flip_p_against_brute_force_enumeration():
    from varreason.stats import sign_flip_p

    rng = np.random.default_rng(0)
    for n in (1, 3, 5, 8):
        for _ in range(5):
            d = rng.normal(0.5, 1.0, n).round(2)
            observed = abs(d.sum())
            flips = [
                abs(sum(s * x for s, x in zip(signs, d, strict=True))) for signs in itertools.product((1, -1), repeat=n)
            ]
            brute = sum(f >= observed - 1e-9 for f in flips) / 2**n
            assert sign_flip_p(d) == pytest.approx(brute)
    assert sign_flip_p([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx(2 / 32)  # all positive: the smallest p
    with pytest.raises(ValueError):
        sign_flip_p([])


def test_paired_t_p_matches_the_t_distribution():
    from varreason.stats import paired_t_p

    # mean 2, sd 1.5811 over 5: t = 2.828 at 4 df -> two-sided p = 0.0474 (tables)
    assert paired_t_p([0.0, 1.0, 2.0, 3.0, 4.0]) == pytest.approx(0.0474, abs=5e-4)
    assert paired_t_p([1.0, 1.0]) == 0.0 and paired_t_p([0.0, 0.0]) == 1.0

import math
from itertools import combinations

import numpy as np
import pytest

from varreason.estimators import (
    acc_log_likelihood,
    ess,
    gml_log_likelihood,
    iwae_bound,
    iwae_bound_by_k,
    log_ratio,
    logsumexp,
    normalised_weights,
    pass_at_k,
)


def test_log_ratio_mean_and_sum():
    prior, post = [-1.0, -2.0, -0.5], [-0.5, -1.0, -0.5]
    assert log_ratio(prior, post, "sum") == pytest.approx(-1.5)
    assert log_ratio(prior, post, "mean") == pytest.approx(-0.5)
    assert log_ratio([], [], "mean") == 0.0
    with pytest.raises(ValueError):
        log_ratio([-1.0], [], "mean")
    with pytest.raises(ValueError):
        log_ratio([-1.0], [-1.0], "max")


def test_gml_is_geometric_mean_of_token_probabilities():
    probs = [0.5, 0.8, 0.1]
    got = math.exp(gml_log_likelihood([math.log(p) for p in probs]))
    assert got == pytest.approx(np.prod(probs) ** (1 / 3))
    with pytest.raises(ValueError):
        gml_log_likelihood([])


def test_acc_is_fraction_verified():
    assert acc_log_likelihood([True, False, False, True]) == pytest.approx(math.log(0.5))
    assert acc_log_likelihood([True] * 3) == 0.0
    assert acc_log_likelihood([False, False]) == float("-inf")
    with pytest.raises(ValueError):
        acc_log_likelihood([])


def test_normalised_weights_and_ess_against_brute_force():
    rng = np.random.default_rng(0)
    lw = rng.normal(size=8) * 3 - 50  # far below 0: exp() alone would underflow less gracefully
    rho = np.exp(lw - lw.max())
    assert np.allclose(normalised_weights(lw), rho / rho.sum())
    w = rho / rho.sum()
    assert ess(lw) == pytest.approx(1 / (w**2).sum())
    assert ess([0.0] * 5) == pytest.approx(5.0)
    assert ess([0.0, -np.inf, -np.inf]) == pytest.approx(1.0)
    # all weights zero: nothing to learn from, no NaNs
    assert normalised_weights([-np.inf, -np.inf]).tolist() == [0.0, 0.0]
    assert ess([-np.inf, -np.inf]) == 0.0


def test_iwae_bound_matches_definition():
    lw = [-1.0, -3.0, math.log(0.25)]
    assert iwae_bound(lw) == pytest.approx(math.log((math.exp(-1) + math.exp(-3) + 0.25) / 3))
    assert logsumexp([-np.inf, -np.inf]) == -np.inf


def test_iwae_bound_non_decreasing_in_k():
    rng = np.random.default_rng(3)
    lw = rng.normal(size=8) * 2
    by_k = iwae_bound_by_k(lw)
    values = [by_k[k] for k in range(1, 9)]
    assert all(b >= a - 1e-12 for a, b in zip(values, values[1:], strict=False))
    # strictly increasing somewhere for non-constant weights, and k=K is the full-set bound
    assert values[-1] > values[0]
    assert values[-1] == pytest.approx(iwae_bound(lw))
    # k=1 is the mean log weight (the ELBO estimate)
    assert values[0] == pytest.approx(np.mean(lw))


def _pass_at_k_enumerated(n: int, c: int, k: int) -> float:
    outcomes = [True] * c + [False] * (n - c)
    subsets = list(combinations(range(n), k))
    return sum(any(outcomes[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", [1, 4, 7])
def test_pass_at_k_equals_enumeration_over_subsets(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(_pass_at_k_enumerated(n, c, k))
    with pytest.raises(ValueError):
        pass_at_k(n, 0, n + 1)

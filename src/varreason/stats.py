"""Small statistics for the claims report: intervals across seeds, paired tests (t and exact
sign-flip), Holm's multiple-comparison adjustment, difficulty bins.

No scipy in the default install, so the Student-t quantile is computed here (Simpson integration of
the density, then bisection); tests check it against tables and by brute-force coverage.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

# Difficulty bins by the initial model's own accuracy on a question (as in the prototype study).
BIN_EDGES = (0.25, 0.5, 0.75)
BIN_LABELS = ("<.25", ".25-.5", ".5-.75", ">=.75")


def _t_density(x: float, df: float) -> float:
    c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return math.exp(c - (df + 1) / 2 * math.log1p(x * x / df))


def t_cdf(x: float, df: float, intervals: int = 2000) -> float:
    """P(T <= x) for Student's t with ``df`` degrees of freedom."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be > 0, got {df}")
    a, b = 0.0, abs(x)
    h = (b - a) / intervals
    total = _t_density(a, df) + _t_density(b, df)
    for i in range(1, intervals):
        total += (4 if i % 2 else 2) * _t_density(a + i * h, df)
    half = total * h / 3
    return 0.5 + half if x >= 0 else 0.5 - half


@lru_cache(maxsize=256)
def t_quantile(p: float, df: float) -> float:
    """The x with P(T <= x) = p."""
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
    return (lo + hi) / 2


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal."""
    return 0.5 * math.erfc(z / math.sqrt(2))


def mean_ci(values: Sequence[float], level: float = 0.95) -> dict:
    """Mean, standard error and the t-interval of ``values`` (e.g. one number per seed)."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        raise ValueError("mean_ci of no values")
    mean = float(x.mean())
    if n == 1:
        return {"n": 1, "mean": mean, "se": None, "lo": None, "hi": None}
    se = float(x.std(ddof=1) / math.sqrt(n))
    half = t_quantile(0.5 + level / 2, n - 1) * se
    return {"n": n, "mean": mean, "se": se, "lo": mean - half, "hi": mean + half}


def paired_difference(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> dict:
    """a - b on the same items (per-question correctness of two models): mean, SE, interval, p-value.

    The interval is the t-interval of the per-item differences; the two-sided p-value uses the
    normal approximation (hundreds of questions per seed).
    """
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if d.ndim != 1 or len(d) != len(a) or len(d) != len(b):
        raise ValueError("paired_difference needs two sequences of the same length")
    out = mean_ci(d, level)
    se = out["se"]
    if se is None or se == 0:
        out["z"], out["p_value"] = None, (1.0 if out["mean"] == 0 else 0.0)
    else:
        out["z"] = out["mean"] / se
        out["p_value"] = float(min(1.0, 2 * normal_sf(abs(out["z"]))))
    out["wins"], out["losses"] = int((d > 0).sum()), int((d < 0).sum())
    return out


def difficulty_bin(accuracy: Sequence[float] | np.ndarray) -> np.ndarray:
    """Bin index 0..3 of each accuracy: [0, .25), [.25, .5), [.5, .75), [.75, 1]."""
    acc = np.asarray(accuracy, dtype=float)
    if np.isnan(acc).any() or (acc < 0).any() or (acc > 1).any():
        raise ValueError("accuracies must be in [0, 1]")
    return np.digitize(acc, BIN_EDGES, right=False)


def bin_shares(bins: np.ndarray, mass: Sequence[float] | None = None) -> list[float]:
    """Share of items (or of ``mass``, e.g. training weight) falling in each difficulty bin."""
    w = np.ones(len(bins)) if mass is None else np.asarray(mass, dtype=float)
    total = w.sum()
    return [float(w[bins == i].sum() / total) if total > 0 else 0.0 for i in range(len(BIN_LABELS))]


# ------------------------------------------------------------------- tests across seeds, and a family


def paired_t_p(differences: Sequence[float]) -> float:
    """Two-sided p-value of the paired t-test that the mean of ``differences`` (one per seed) is 0."""
    d = np.asarray(differences, dtype=float)
    if len(d) < 2:
        raise ValueError("a paired t-test needs at least two differences")
    se = d.std(ddof=1) / math.sqrt(len(d))
    if se == 0:
        return 1.0 if d.mean() == 0 else 0.0
    return float(min(1.0, 2 * (1 - t_cdf(abs(d.mean()) / se, len(d) - 1))))


def sign_flip_p(differences: Sequence[float], max_exact: int = 20) -> float:
    """Exact two-sided sign-flip permutation p-value for a zero mean of paired ``differences``.

    Under the null each difference is as likely positive as negative: the p-value is the share of
    the 2^n sign patterns whose |mean| is at least the observed one. The observed pattern and its
    mirror image always count, so p >= 2 / 2^n: with 5 seeds no result gets below 1/16.
    """
    d = np.asarray(differences, dtype=float)
    n = len(d)
    if n == 0 or n > max_exact:
        raise ValueError(f"sign_flip_p enumerates 2^n patterns: n must be 1 to {max_exact}, got {n}")
    patterns = (np.arange(1 << n)[:, None] >> np.arange(n)) & 1  # each row: which signs flip
    sums = np.abs(((1 - 2 * patterns) * d).sum(axis=1))
    observed = abs(d.sum())
    return float(np.mean(sums >= observed - 1e-12 * max(1.0, observed)))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error control), in the input's order.

    The i-th smallest p (0-based) is multiplied by (m - i), then made non-decreasing along that
    order and capped at 1; a hypothesis is rejected at level alpha when its adjusted p <= alpha.
    """
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out = np.empty(m)
    out[order] = adjusted
    return out.tolist()

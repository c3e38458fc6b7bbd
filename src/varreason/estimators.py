"""The method's math as small pure functions (log space throughout), tested against brute force.

Notation (docs/design.md, "Notation"): rho_k = pi(z_k|x) * pi(Y|x,z_k) / q(z_k|x,y'); the likelihood ratio is
length-normalised by default (mean per-token log-ratio on the same token ids).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import combinations

import numpy as np

NEG_INF = float("-inf")


def log_ratio(prior_logps: Sequence[float], posterior_logps: Sequence[float], reduce: str = "mean") -> float:
    """log pi(z|x) - log q(z|x,y'), per-token mean (length-normalised) or sum."""
    if len(prior_logps) != len(posterior_logps):
        raise ValueError("prior and posterior log-probs must cover the same tokens")
    if len(prior_logps) == 0:
        return 0.0
    diff = float(np.sum(np.asarray(prior_logps, dtype=np.float64) - np.asarray(posterior_logps, dtype=np.float64)))
    if reduce == "mean":
        return diff / len(prior_logps)
    if reduce == "sum":
        return diff
    raise ValueError(f"reduce must be 'mean' or 'sum', got {reduce!r}")


def gml_log_likelihood(answer_logps: Sequence[float]) -> float:
    """GML estimator in log space: mean over answer tokens of log pi(y'_t | x, z, y'_<t)."""
    if len(answer_logps) == 0:
        raise ValueError("GML needs at least one answer token")
    return float(np.mean(np.asarray(answer_logps, dtype=np.float64)))


def acc_log_likelihood(verdicts: Sequence[bool]) -> float:
    """Acc estimator in log space: log of the fraction of sampled answers the verifier accepts."""
    if len(verdicts) == 0:
        raise ValueError("Acc needs at least one sampled answer")
    acc = sum(bool(v) for v in verdicts) / len(verdicts)
    return math.log(acc) if acc > 0 else NEG_INF


def logsumexp(x: Sequence[float]) -> float:
    a = np.asarray(x, dtype=np.float64)
    m = a.max() if a.size else NEG_INF
    if not np.isfinite(m):
        return float(m) if a.size else NEG_INF
    return float(m + np.log(np.exp(a - m).sum()))


def normalised_weights(log_weights: Sequence[float]) -> np.ndarray:
    """rho~_k = rho_k / sum_j rho_j, computed as a softmax of log weights; all -inf gives zeros."""
    a = np.asarray(log_weights, dtype=np.float64)
    total = logsumexp(a)
    if not np.isfinite(total):
        return np.zeros_like(a)
    return np.exp(a - total)


def ess(log_weights: Sequence[float]) -> float:
    """Effective sample size 1 / sum(rho~^2), between 1 and K (0 when every weight is zero)."""
    w = normalised_weights(log_weights)
    s = float((w**2).sum())
    return 1.0 / s if s > 0 else 0.0


def iwae_bound(log_weights: Sequence[float]) -> float:
    """One-sample estimate of L_K: log (1/K) sum_k rho_k."""
    return logsumexp(log_weights) - math.log(len(log_weights))


def iwae_bound_by_k(log_weights: Sequence[float], max_subsets: int = 2000, seed: int = 0) -> dict[int, float]:
    """For k = 1..K, the mean of ``iwae_bound`` over size-k subsets of the K weights.

    Exact (every subset) when there are at most ``max_subsets`` of them, else a seeded sample.
    The exact average is non-decreasing in k (Burda et al., 2016, Thm. 1).
    """
    lw = list(log_weights)
    n = len(lw)
    rng = np.random.default_rng(seed)
    out = {}
    for k in range(1, n + 1):
        if math.comb(n, k) <= max_subsets:
            subsets = combinations(range(n), k)
        else:
            subsets = (rng.choice(n, size=k, replace=False) for _ in range(max_subsets))
        vals = [iwae_bound([lw[i] for i in s]) for s in subsets]
        out[k] = float(np.mean(vals))
    return out


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al., 2021): 1 - C(n-c, k) / C(n, k), for n samples with c correct."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))

"""The claims plan's tests across seeds: one comparison, and a family with Holm's adjustment.

Pure functions of per-seed numbers (no files), so the report and the tests share them. A
comparison's unit is the seed: its per-seed value is the paired difference a - b on that seed's
held-out questions (the mean over questions); across seeds it gets a t-interval, a two-sided paired
t-test and an exact two-sided sign-flip test. A family's p-values are Holm-adjusted per test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from varreason.stats import holm, mean_ci, paired_t_p, sign_flip_p


def across_seeds(differences: Mapping[int, float], level: float = 0.95) -> dict:
    """Mean gain, SE, interval, both p-values and the count of positive seeds of per-seed differences."""
    d = list(differences.values())
    if not d:
        return {"n": 0, "mean": None, "se": None, "lo": None, "hi": None, "p_t": None, "p_sign": None}
    out = mean_ci(d, level)
    out["seeds"] = sorted(differences)
    out["seeds_positive"] = sum(x > 0 for x in d)
    out["p_t"] = paired_t_p(d) if len(d) >= 2 else None
    out["p_sign"] = sign_flip_p(d) if len(d) >= 1 else None
    return out


def adjust_family(rows: Sequence[dict], alpha: float) -> list[dict]:
    """Each row's ``p_t`` and ``p_sign`` Holm-adjusted over the family (``p_t_holm``, ``p_sign_holm``),
    and ``holds``: a positive mean gain with both adjusted p-values below ``alpha``.

    A comparison without a p-value (fewer than two seeds) counts as p = 1 in the family.
    """
    out = [dict(r) for r in rows]
    for key in ("p_t", "p_sign"):
        adjusted = holm([1.0 if r[key] is None else r[key] for r in out]) if out else []
        for r, p in zip(out, adjusted, strict=True):
            r[f"{key}_holm"] = p
    for r in out:
        r["holds"] = bool(
            r["mean"] is not None and r["mean"] > 0 and r["p_t_holm"] < alpha and r["p_sign_holm"] < alpha
        )
    return out

"""Stage ``weights``: importance weights per (question, k) for one estimator of pi(Y | x, z).

log rho_k = log_ratio(pi(z_k|x) / q(z_k|x,y')) + log pi^(Y | x, z_k), with the ratio per-token
mean (default) or sum, and pi^ either GML or Acc. Raw log-weights are stored before any
selection; per question: normalised weights, ESS and the IWAE bound estimate. A question whose
log-weights are all -inf, NaN or +inf gets zero weight: it stays in the table, is never selected, and
is counted with its reason in the metrics (``questions_dropped``); NaN/+inf read as weight zero.

The reference's long-trace rule (``select.max_thinking_tokens``, 28000 there; null: off):
a trace of that many thinking tokens or more gets weight zero, its ``log_weight`` -inf (its
``log_ratio`` and ``log_likelihood`` keep their values). Its thinking tokens are the tokens the
log-ratio averages over: the trace's token ids through the answer delimiter (the reference's
``shared_think_len``). Such traces are counted in the metrics (``traces_too_long``, when any).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from varreason import columns as C
from varreason.estimators import (
    NEG_INF,
    acc_log_likelihood,
    ess,
    gml_log_likelihood,
    iwae_bound,
    iwae_bound_by_k,
    log_ratio,
    normalised_weights,
)
from varreason.io import InputError, read_shards, write_json, write_parquet
from varreason.paths import ESTIMATORS

DROP_INVALID = "NaN or +inf log-weight (a broken score)"
DROP_NO_DELIMITER = "no trace reached the answer delimiter"
DROP_ZERO = "every weight is zero (log-weight -inf)"


def drop_too_long(limit: int) -> str:
    return f"every trace that reached the answer delimiter has {limit} or more thinking tokens"


def weights(
    params: dict,
    estimator: str,
    scored: Sequence[str | Path],
    out: str | Path,
    metrics: str | Path,
    rollouts: Sequence[str | Path] = (),
) -> pd.DataFrame:
    """Log-weights of every scored trace (all shards), normalised weights, ESS and IWAE bound per question."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    df = read_shards(scored, C.SCORED_TRACES)
    reduce = params["scoring"]["ratio"]
    df["log_ratio"] = [log_ratio(p, q, reduce) for p, q in zip(df["prior_logps"], df["posterior_logps"], strict=True)]
    ok = df["finish_reason"] == "stop"
    if estimator == "gml":
        df["log_likelihood"] = [
            gml_log_likelihood(a) if good else NEG_INF for a, good in zip(df["answer_logps"], ok, strict=True)
        ]
    else:
        if not rollouts:
            raise InputError("weights[acc]: needs the rollout shards")
        ro = read_shards(rollouts, C.ROLLOUTS)
        df = df.merge(ro, on=["question_id", "sample_index"], how="left", validate="one_to_one")
        if df["acc"].isna().any():
            qid = df.loc[df["acc"].isna(), "question_id"].iloc[0]
            raise InputError(f"rollout shards: no rollouts for question {qid}")
        df["log_likelihood"] = [
            acc_log_likelihood(v) if good and len(v) else NEG_INF
            for v, good in zip(df["rollout_verdicts"], ok, strict=True)
        ]
    df["log_weight"] = df["log_ratio"] + df["log_likelihood"]
    limit = params["select"]["max_thinking_tokens"]
    too_long = thinking_tokens(df) >= limit if limit is not None else pd.Series(False, index=df.index)
    if too_long.any():
        df.loc[too_long, "log_weight"] = NEG_INF

    df = df.sort_values(["question_id", "sample_index"], kind="stable").reset_index(drop=True)
    per_q = []
    for _, g in df.groupby("question_id", sort=False):
        lw = usable_log_weights(g["log_weight"].to_numpy())
        per_q.append(
            pd.DataFrame(
                {"weight": normalised_weights(lw), "ess": ess(lw), "iwae_bound": iwae_bound(lw)}, index=g.index
            )
        )
    df = df.join(pd.concat(per_q))
    stats = weight_stats(df, params["sampling"]["k"], limit)
    if stats["questions_dropped"]:
        reasons = "; ".join(f"{n} {r}" for r, n in stats["questions_dropped_reasons"].items())
        print(
            f"weights[{estimator}]: {stats['questions_dropped']} of {stats['n_questions']} question(s) get zero "
            f"weight and are dropped ({reasons}), e.g. {', '.join(map(str, dropped_questions(df, limit)[:3]))}; "
            f"counted in {metrics}",
            file=sys.stderr,
        )
    write_parquet(df, out)
    write_json(stats, metrics)
    return df


def usable_log_weights(lw: np.ndarray) -> np.ndarray:
    """Raw log-weights with NaN and +inf (a broken score, e.g. -inf - -inf) read as -inf: weight zero.

    The raw column keeps them (nothing is hidden); normalised weights, ESS and bounds use this.
    """
    lw = np.asarray(lw, dtype=np.float64)
    return np.where(np.isnan(lw) | np.isposinf(lw), NEG_INF, lw)


def thinking_tokens(df: pd.DataFrame) -> pd.Series:
    """Each trace's thinking tokens: the trace tokens its log-ratio averages over (through the delimiter)."""
    return df["prior_logps"].map(len)


def drop_reason(g: pd.DataFrame, max_thinking_tokens: int | None = None) -> str | None:
    """Why a question's traces all get zero weight (None when one has a positive weight)."""
    lw = g["log_weight"].to_numpy(dtype=np.float64)
    if np.isfinite(lw).any():
        return None
    if (np.isnan(lw) | np.isposinf(lw)).any():
        return DROP_INVALID
    stopped = g["finish_reason"] == "stop"
    if not stopped.any():
        return DROP_NO_DELIMITER
    if max_thinking_tokens is not None and (thinking_tokens(g[stopped]) >= max_thinking_tokens).all():
        return drop_too_long(max_thinking_tokens)
    return DROP_ZERO


def dropped_questions(df: pd.DataFrame, max_thinking_tokens: int | None = None) -> list:
    return [qid for qid, g in df.groupby("question_id", sort=False) if drop_reason(g, max_thinking_tokens) is not None]


def weight_stats(df: pd.DataFrame, k: int, max_thinking_tokens: int | None = None) -> dict:
    """What a person checks first: are the weights degenerate, which term dominates."""
    g = df.groupby("question_id", sort=False)
    finite = np.isfinite(df["log_weight"])
    live = g["log_weight"].apply(lambda s: np.isfinite(s).any())
    bounds = [iwae_bound_by_k(usable_log_weights(s.to_numpy())) for _, s in g["log_weight"] if np.isfinite(s).any()]
    reasons = pd.Series([drop_reason(q, max_thinking_tokens) for _, q in g], dtype=object).dropna()
    lw = df["log_weight"].to_numpy(dtype=np.float64)
    # per k: the mean over questions of the subset-averaged bound, among questions where it is finite
    # (a size-k subset whose weights are all zero makes it -inf: e.g. Acc with no correct rollout);
    # the share of questions where it is finite says how much that filter hides
    ks = sorted({j for b in bounds for j in b})
    by_k, finite_k = {}, {}
    for j in ks:
        vals = np.array([b[j] for b in bounds if j in b])
        ok = np.isfinite(vals)
        by_k[str(j)] = float(vals[ok].mean()) if ok.any() else None
        finite_k[str(j)] = float(ok.mean())
    stats = {
        "n_questions": int(g.ngroups),
        "n_traces": len(df),
        "traces_ended_at_delimiter": float((df["finish_reason"] == "stop").mean()),
        "questions_with_any_weight": float(live.mean()),
        # questions whose every trace has weight zero: kept in the table, never selected
        "questions_dropped": len(reasons),
        "questions_dropped_reasons": {str(r): int(n) for r, n in reasons.value_counts().items()},
        "traces_nan_or_inf": int((np.isnan(lw) | np.isposinf(lw)).sum()),
        "ess_over_k_mean": float(g["ess"].first()[live].mean() / k) if live.any() else 0.0,
        "top_weight_median": float(g["weight"].max()[live].median()) if live.any() else 0.0,
        "log_ratio_mean": float(df["log_ratio"][finite].mean()) if finite.any() else None,
        "log_likelihood_mean": float(df["log_likelihood"][finite].mean()) if finite.any() else None,
        "iwae_bound_mean": float(g["iwae_bound"].first()[live].mean()) if live.any() else None,
        "iwae_bound_by_k": by_k,
        "iwae_bound_finite_frac_by_k": finite_k,
    }
    if max_thinking_tokens is not None:
        n_long = int((thinking_tokens(df) >= max_thinking_tokens).sum())
        if n_long:  # present only when the rule removed a trace (the embedded run's traces are short)
            stats["traces_too_long"] = n_long
    return stats

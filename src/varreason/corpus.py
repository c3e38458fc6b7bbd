"""Helpers on the pipeline's tables that several stages and tools share: which traces a selection
keeps (and which questions fall back to their original trace), and per-question accuracy (the
difficulty of a question, and a model's per-question score).

They run no model, so ``varreason traces`` and the report use them without importing torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from varreason import columns as C
from varreason.io import read_parquet, read_shards
from varreason.task import trace_check

SELECT_MODES = ("argmax", "threshold", "filter", "soft")


def soft_probabilities(scores: pd.Series, question_ids: pd.Series) -> pd.Series:
    """Per question, exp(score) normalised over its traces (rho~ for the log-weight): sums to one per question."""
    s = scores.astype(np.float64)
    top = s.groupby(question_ids, sort=False).transform("max")
    e = np.exp(s - top)
    return e / e.groupby(question_ids, sort=False).transform("sum")


def select_traces(
    df: pd.DataFrame,
    mode: str,
    threshold: float,
    score: str = "log_weight",
    seed: int = 0,
    candidates: pd.Series | None = None,
) -> pd.DataFrame:
    """Rows of the weights table that enter the final set, with their training weight (always 1).

    ``score`` is the column that ranks a question's traces (``log_weight``: the method;
    ``log_likelihood``: the answer term alone). Only traces with a finite score (and, when
    ``candidates`` is given, a true flag there) take part. Modes, one trace per question:
    ``argmax`` the best; ``threshold`` the best if exp(score) > ``threshold``; ``filter`` one drawn
    uniformly among the traces with exp(score) > ``threshold`` (no weights: a verifier filter);
    ``soft`` one drawn with probability exp(score) normalised over the question's traces (rho~: an
    unbiased one-sample estimate of the IWAE gradient, so every question counts once, as in the
    other modes, instead of K rows of weight ~1/K). Draws use ``seed``, in table order.
    """
    if mode not in SELECT_MODES:
        raise ValueError(f"select.mode must be one of {', '.join(SELECT_MODES)}, got {mode!r}")
    ok = np.isfinite(df[score].to_numpy(dtype=np.float64))
    if candidates is not None:
        ok &= candidates.to_numpy(dtype=bool)
    live = df[ok]
    if mode in ("argmax", "threshold"):
        best = live.loc[live.groupby("question_id", sort=False)[score].idxmax()]
        if mode == "threshold":
            best = best[np.exp(best[score]) > threshold]
        return best.assign(train_weight=1.0)
    rng = np.random.default_rng(seed)
    if mode == "filter":
        live = live[np.exp(live[score]) > threshold]
        probs = pd.Series(1.0, index=live.index) / live.groupby("question_id", sort=False)[score].transform("size")
    else:
        probs = soft_probabilities(live[score], live["question_id"])
    chosen = []
    for _, g in live.groupby("question_id", sort=False):
        p = probs.loc[g.index].to_numpy()
        chosen.append(g.index[rng.choice(len(g), p=p / p.sum())])
    return df.loc[chosen].assign(train_weight=1.0)


def select_for(df: pd.DataFrame, params: dict) -> pd.DataFrame:
    """``select_traces`` with a run's ``select`` params (``valid_only``: the embedded task's checker first)."""
    sel = params["select"]
    score = sel.get("score", "log_weight")
    if score not in df.columns:
        raise ValueError(f"select.score {score!r}: the weights table has no such column (columns: {list(df.columns)})")
    candidates = None
    if sel.get("valid_only"):
        if params["task"]["source"] != "synthetic":
            raise ValueError("select.valid_only needs the embedded task (task.source synthetic): it checks every step")
        modulus = params["task"]["modulus"]
        candidates = pd.Series(
            [trace_check(q, t, modulus)[0] for q, t in zip(df["question"], df["trace"], strict=True)], index=df.index
        )
    return select_traces(df, sel["mode"], sel["threshold"], score, params["seed"], candidates)


def fallback_questions(weights: pd.DataFrame) -> list:
    """Questions of a weights table whose traces all have weight zero (no finite log-weight), in table order."""
    live = np.isfinite(weights["log_weight"].to_numpy(dtype=np.float64))
    any_live = pd.Series(live, index=weights.index).groupby(weights["question_id"], sort=False).any()
    return any_live.index[~any_live.to_numpy()].tolist()


def own_accuracy(initial_samples: list[str | Path]) -> pd.Series:
    """pi_0's accuracy on each training question over its own samples (sample_initial's shards).

    The difficulty of a question for the claims report and ``varreason traces``.
    """
    own = read_shards(initial_samples, ["question_id", "correct"])
    return own.groupby("question_id")["correct"].mean().astype(float)


def per_question(path: str | Path) -> pd.DataFrame:
    """Greedy correctness and sampled accuracy (pass@1) per test question, indexed by question id."""
    df = read_parquet(path, C.EVAL_SAMPLES)
    greedy = df[df["decoding"] == "greedy"].groupby("question_id")["correct"].mean()
    sampled = df[df["decoding"] == "sampled"].groupby("question_id")["correct"].mean()
    return pd.DataFrame({"greedy": greedy.astype(float), "pass1": sampled.astype(float)})

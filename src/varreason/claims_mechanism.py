"""What the claims report measures about *how* each arm's training set differs: coverage,
difficulty bins and trace granularity, and the importance weights' diagnostics.

Input per seed is the dict ``stages/claims_report._load_seed`` builds. Difficulty of a training
question is pi_0's accuracy over its own samples; of a test question, pi_0's pass@1.

Granularity: a trace's steps per operation of its question (1.0: one operation per step, the
finest trace; the reference annotator merges 1..max_merge). The embedded task was designed so that
finer traces are the better ones: does selection find them, and on which questions?

Simplification: test-question bins use pi_0's pass@1 while gains are in greedy accuracy, so the
binning and the measure use different samples (regression to the mean affects every arm alike).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from varreason.stats import BIN_LABELS, bin_shares, difficulty_bin, mean_ci
from varreason.task import parse_question, trace_check

QUANTILES = ("p05", "p25", "p50", "p75", "p95")
QUANTILE_LEVELS = (0.05, 0.25, 0.5, 0.75, 0.95)


def mean_opt(values) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def train_bins(run: dict) -> pd.Series:
    d = run["train_difficulty"]
    return pd.Series(difficulty_bin(d.to_numpy()), index=d.index)


def coverage(runs: dict, arms: list[str]) -> dict:
    """Per arm, across the seeds it ran on: training questions its own traces cover, rows, validity."""
    out = {}
    for a in arms:
        ms = [r["set_metrics"][a] for r in runs.values() if a in r["set_metrics"]]
        if not ms:
            continue
        frac = [m["questions_selected"] / m["n_train_questions"] for m in ms if "questions_selected" in m]
        out[a] = {
            "seeds": len(ms),
            "questions_covered_frac": mean_opt(frac),
            "n_selected": float(np.mean([m.get("n_selected", 0) for m in ms])),
            "n_examples": float(np.mean([m["n_examples"] for m in ms])),
            "selected_valid_frac": mean_opt([m.get("selected_valid_frac") for m in ms]),
        }
    return out


def steps_per_op(questions: pd.Series, traces: pd.Series, modulus: int) -> np.ndarray:
    """Steps of each trace over the operations of its question (1.0 = finest)."""
    return np.array(
        [trace_check(q, t, modulus)[1] / len(parse_question(q)[1]) for q, t in zip(questions, traces, strict=True)]
    )


def granularity(runs: dict, arms: list[str], modulus: int) -> dict:
    """Steps per operation by training-question bin: reference traces, and each arm's own traces.

    Per seed, the mean over a set's selected rows (each row once, whatever its weight); across seeds,
    the mean of the per-seed values where the bin is not empty.
    """
    per_seed = {}
    for s, r in runs.items():
        bins = train_bins(r)
        ref = r["train"].set_index("question_id")
        rows = {"reference": (ref.index, ref["trace"])}
        for a in arms:
            df = r["sets"].get(a)
            if df is None:
                continue
            sel = df[df["source"] == "selected"]
            rows[a] = (sel["question_id"], sel["trace"])
        entry = {}
        for name, (ids, traces) in rows.items():
            ids = pd.Index(ids)
            g = steps_per_op(ref.loc[ids, "question"], pd.Series(list(traces)), modulus)
            b = bins.reindex(ids).to_numpy()
            entry[name] = {
                "all": float(g.mean()) if len(g) else None,
                "by_bin": [float(g[b == i].mean()) if (b == i).any() else None for i in range(len(BIN_LABELS))],
            }
        per_seed[s] = entry
    names = sorted({n for e in per_seed.values() for n in e}, key=lambda n: (n != "reference", n))
    mean = {
        n: {
            "all": mean_opt([e[n]["all"] for e in per_seed.values() if n in e]),
            "by_bin": [mean_opt([e[n]["by_bin"][i] for e in per_seed.values() if n in e]) for i in range(4)],
        }
        for n in names
    }
    return {"labels": list(BIN_LABELS), "mean": mean, "per_seed": per_seed}


def difficulty(runs: dict, arms: list[str]) -> dict:
    """Per seed: bin shares of train questions and of each arm's selected mass; greedy gain by test bin."""
    out = {"labels": list(BIN_LABELS), "per_seed": {}}
    for s, r in runs.items():
        bins = train_bins(r)
        shares = {"questions": bin_shares(bins.to_numpy())}
        for arm in arms:
            df = r["sets"].get(arm)
            if df is None:
                continue
            sel = df[df["source"] == "selected"]
            if not sel.empty:  # SFT selects nothing
                shares[arm] = bin_shares(bins.loc[sel["question_id"]].to_numpy(), sel["weight"].to_numpy())
        test_bins = difficulty_bin(r["evals"]["initial"]["pass1"].to_numpy())
        base = r["evals"]["initial"]["greedy"].to_numpy()
        gains = {}
        for m in arms:
            if m not in r["evals"]:
                continue
            g = r["evals"][m]["greedy"].to_numpy() - base
            gains[m] = [float(g[test_bins == i].mean()) if (test_bins == i).any() else None for i in range(4)]
        out["per_seed"][s] = {"train_shares": shares, "test_question_shares": bin_shares(test_bins), "gain": gains}
    seeds = list(out["per_seed"].values())
    keys = [k for k in ["questions", *arms] if any(k in e["train_shares"] for e in seeds)]
    out["mean_train_shares"] = {
        k: [mean_opt([e["train_shares"][k][i] for e in seeds if k in e["train_shares"]]) for i in range(4)]
        for k in keys
    }
    out["mean_test_question_shares"] = [mean_opt([e["test_question_shares"][i] for e in seeds]) for i in range(4)]
    out["mean_greedy_gain_by_bin"] = {
        m: [mean_opt([e["gain"][m][i] for e in seeds if m in e["gain"]]) for i in range(4)]
        for m in arms
        if any(m in e["gain"] for e in seeds)
    }
    return out


def weights_summary(runs: dict, synthetic: bool, modulus: int) -> dict:
    """Per variant: ESS/K, IWAE bound by K, log-weight quantiles, wrong-step share among answer-reaching traces."""
    out = {}
    variants = sorted({v for r in runs.values() for v in r["weights"]})
    for v in variants:
        per = []
        for r in runs.values():
            if v not in r["weights"]:
                continue
            m, w = r["weight_metrics"][v], r["weights"][v]
            lw = w["log_weight"].to_numpy()
            finite = np.isfinite(lw)
            entry = {
                "ess_over_k": m["ess_over_k_mean"],
                "iwae_bound_by_k": m["iwae_bound_by_k"],
                "iwae_bound_finite_frac_by_k": m.get("iwae_bound_finite_frac_by_k", {}),
                "log_weight_quantiles": dict(zip(QUANTILES, np.quantile(lw[finite], QUANTILE_LEVELS), strict=True))
                if finite.any()
                else {},
                "log_weight_neg_inf_frac": float(1 - finite.mean()),
            }
            if synthetic:
                valid = np.array(
                    [trace_check(q, t, modulus)[0] for q, t in zip(w["question"], w["trace"], strict=True)]
                )
                stop = (w["finish_reason"] == "stop").to_numpy()
                reach = stop & (w["log_likelihood"].to_numpy() > np.log(0.5))
                entry["traces_valid_frac"] = float(valid[stop].mean()) if stop.any() else None
                # "copying the hint": pi_0 gives the answer after the trace, yet a step is wrong
                entry["answer_reaching_wrong_step_frac"] = float((~valid[reach]).mean()) if reach.any() else None
            per.append(entry)
        ks = sorted({int(k) for e in per for k in e["iwae_bound_by_k"]})
        bound = {}
        for k in ks:
            vals = [e["iwae_bound_by_k"][str(k)] for e in per if e["iwae_bound_by_k"].get(str(k)) is not None]
            if vals:
                bound[str(k)] = mean_ci(vals)
        out[v] = {
            "seeds": len(per),
            "ess_over_k": mean_ci([e["ess_over_k"] for e in per]),
            "iwae_bound_by_k": bound,
            "iwae_bound_finite_frac_by_k": {
                str(k): mean_opt([e["iwae_bound_finite_frac_by_k"].get(str(k)) for e in per]) for k in ks
            },
            "log_weight_quantiles": {
                q: mean_opt([e["log_weight_quantiles"].get(q) for e in per if e["log_weight_quantiles"]])
                for q in QUANTILES
            },
            "log_weight_neg_inf_frac": float(np.mean([e["log_weight_neg_inf_frac"] for e in per])),
            "traces_valid_frac": mean_opt([e.get("traces_valid_frac") for e in per]),
            "answer_reaching_wrong_step_frac": mean_opt([e.get("answer_reaching_wrong_step_frac") for e in per]),
        }
    return out

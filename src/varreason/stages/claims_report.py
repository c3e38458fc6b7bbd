"""Stage ``claims_report``: the paper's claims tested across seeds (markdown + JSON).

For every model of claims.ARMS: greedy accuracy and pass@1 per seed, the across-seed mean with a
95% t-interval; the targets (the method minus each baseline, per seed and across seeds, and
whether the mean gain exceeds two standard errors); paired tests per seed on the same test
questions; ablations as paired differences; difficulty bins by the initial model's own accuracy;
weight diagnostics (IWAE bound by K, ESS/K, the raw log-weight distribution) and how often the
chosen traces reach the hinted answer through a wrong step.

Simplification: difficulty bins of test questions use the initial model's pass@1 over its
``evaluate.n_samples`` answers; gains are in greedy accuracy, so the binning and the measure use
different samples (regression to the mean affects every method alike).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from varreason import claims as VC
from varreason import paths as P
from varreason.corpus import own_accuracy, per_question
from varreason.io import InputError, read_parquet, write_json, write_text
from varreason.stats import BIN_LABELS, bin_shares, difficulty_bin, mean_ci, paired_difference
from varreason.task import trace_check

# (name, method, compared with, what it tests)
ABLATIONS = [
    ("hint vs no hint", VC.PRIMARY, "nohint-threshold", "the same rule on pi_0's own traces"),
    ("threshold vs forced (GML)", VC.PRIMARY, "vr-gml-argmax", "one trace per question vs a weight threshold"),
    ("threshold vs forced (Acc)", "vr-acc-threshold", "vr-acc-argmax", "the same with the Acc estimator"),
    ("threshold vs soft (GML)", VC.PRIMARY, "vr-gml-soft", "keep the best trace vs train on every trace by rho~"),
    ("mixed vs alone (VR)", VC.PRIMARY, "vr-gml-threshold-alone", "selected traces with or without the original"),
    ("mixed vs alone (RFT)", "rft", "rft-alone", "RFT's kept traces with or without the original"),
    ("mean vs summed log-ratio", VC.PRIMARY, "vr-gml-sum-threshold", "length-normalised vs summed log pi/q"),
    ("round two vs one", "round2-gml-threshold", VC.PRIMARY, "q updated by the forward KL, traces resampled"),
    ("GML vs Acc", VC.PRIMARY, "vr-acc-threshold", "the two estimators of pi(Y|x,z)"),
]


QUANTILES = ("p05", "p25", "p50", "p75", "p95")
QUANTILE_LEVELS = (0.05, 0.25, 0.5, 0.75, 0.95)


def _at(root: str | Path, pattern: str, seed: int, **kw) -> Path:
    """A claims path (claims.py layout) under ``root`` instead of the default folder."""
    return Path(root) / pattern.format(seed=seed, **kw)[len(VC.ROOT) + 1 :]


def _load_seed(root, seed: int, shards: int) -> dict:
    evals = {m: per_question(_at(root, VC.EVAL_SAMPLES, seed, model=m)) for m in VC.MODELS}
    ids = evals["initial"].index
    for m, e in evals.items():
        if not e.index.equals(ids):
            raise InputError(f"{_at(root, VC.EVAL_SAMPLES, seed, model=m)}: not the same test questions as initial")
    sets = {}
    for arm in VC.ARMS:
        path = _at(root, VC.ARM_SET, seed, arm=arm)
        sets[arm] = read_parquet(path, ["question_id", "source", "weight"]) if path.exists() else None
    train = read_parquet(_at(root, VC.SEED_DIR + P.PREPARED_TRAIN, seed), ["answer"])
    test = read_parquet(_at(root, VC.SEED_DIR + P.PREPARED_TEST, seed), ["answer"])
    return {
        # what a model that ignores the question gets: always the most common training answer
        "constant_guess": float((test["answer"] == train["answer"].mode().iloc[0]).mean()),
        "evals": evals,
        "train_difficulty": own_accuracy(
            [_at(root, VC.SEED_DIR + P.INITIAL_SAMPLES, seed, shard=s) for s in range(shards)]
        ),
        "sets": sets,
        "set_metrics": {a: json.loads(_at(root, VC.ARM_SET_METRICS, seed, arm=a).read_text()) for a in VC.ARMS},
        "weight_metrics": {
            v: json.loads(_at(root, VC.WEIGHT_METRICS, seed, variant=v).read_text()) for v in VC.VARIANTS
        },
        "weights": {
            v: read_parquet(
                _at(root, VC.WEIGHTS, seed, variant=v),
                ["question_id", "question", "trace", "log_weight", "log_ratio", "log_likelihood", "finish_reason"],
            )
            for v in VC.VARIANTS
        },
    }


def _ci_cell(ci: dict, scale: float = 100.0) -> str:
    if ci["lo"] is None:
        return f"{scale * ci['mean']:.1f}"
    return f"{scale * ci['mean']:.1f} [{scale * ci['lo']:.1f}, {scale * ci['hi']:.1f}]"


def _comparison(runs: dict, a: str, b: str, metric: str) -> dict:
    """a minus b: per seed (paired over questions) and across seeds."""
    per_seed = {s: paired_difference(r["evals"][a][metric], r["evals"][b][metric]) for s, r in runs.items()}
    across = mean_ci([d["mean"] for d in per_seed.values()])
    across["beats_by_2se"] = bool(across["se"] is not None and across["mean"] > 2 * across["se"])
    across["seeds_positive"] = sum(d["mean"] > 0 for d in per_seed.values())
    across["seeds_significant"] = sum(d["mean"] > 0 and d["p_value"] < 0.05 for d in per_seed.values())
    return {"a": a, "b": b, "metric": metric, "across_seeds": across, "per_seed": per_seed}


def _difficulty(runs: dict) -> dict:
    """Per seed: bin shares of train questions, RFT's kept traces, VR's weight mass; test gains."""
    out = {"labels": list(BIN_LABELS), "per_seed": {}}
    for s, r in runs.items():
        train_bins = pd.Series(difficulty_bin(r["train_difficulty"].to_numpy()), index=r["train_difficulty"].index)
        shares = {"questions": bin_shares(train_bins.to_numpy())}
        for arm, df in r["sets"].items():
            if df is None:
                continue
            sel = df[df["source"] == "selected"]
            if sel.empty:  # SFT selects nothing
                continue
            shares[arm] = bin_shares(train_bins.loc[sel["question_id"]].to_numpy(), sel["weight"].to_numpy())
        test_acc = r["evals"]["initial"]["pass1"]
        test_bins = difficulty_bin(test_acc.to_numpy())
        base = r["evals"]["initial"]["greedy"].to_numpy()
        gains = {}
        for m in VC.ARMS:
            g = r["evals"][m]["greedy"].to_numpy() - base
            gains[m] = [float(g[test_bins == i].mean()) if (test_bins == i).any() else None for i in range(4)]
        out["per_seed"][s] = {
            "train_shares": shares,
            "test_question_shares": bin_shares(test_bins),
            "greedy_gain_by_bin": gains,
        }
    seeds = list(out["per_seed"])

    def avg(get):
        return _mean_opt([get(out["per_seed"][s]) for s in seeds])

    keys = list(out["per_seed"][seeds[0]]["train_shares"])
    out["mean_train_shares"] = {
        k: [avg(lambda d, k=k, i=i: d["train_shares"].get(k, [None] * 4)[i]) for i in range(4)] for k in keys
    }
    out["mean_test_question_shares"] = [avg(lambda d, i=i: d["test_question_shares"][i]) for i in range(4)]
    out["mean_greedy_gain_by_bin"] = {
        m: [avg(lambda d, m=m, i=i: d["greedy_gain_by_bin"][m][i]) for i in range(4)] for m in VC.ARMS
    }
    return out


def _weights_summary(runs: dict, params: dict) -> dict:
    """Per variant: ESS/K, IWAE bound by K, log-weight quantiles, wrong-step share among answer-reaching traces."""
    modulus = params["task"]["modulus"]
    synthetic = params["task"]["source"] == "synthetic"
    out = {}
    for v in VC.VARIANTS:
        per = []
        for r in runs.values():
            m = r["weight_metrics"][v]
            w = r["weights"][v]
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
                "log_ratio_mean": m["log_ratio_mean"],
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
        out[v] = {
            "ess_over_k": mean_ci([e["ess_over_k"] for e in per]),
            "iwae_bound_by_k": {
                str(k): mean_ci(
                    [e["iwae_bound_by_k"][str(k)] for e in per if e["iwae_bound_by_k"].get(str(k)) is not None]
                )
                for k in ks
                if any(e["iwae_bound_by_k"].get(str(k)) is not None for e in per)
            },
            "iwae_bound_finite_frac_by_k": {
                str(k): _mean_opt([e["iwae_bound_finite_frac_by_k"].get(str(k)) for e in per]) for k in ks
            },
            "log_weight_quantiles": {
                q: float(np.mean([e["log_weight_quantiles"][q] for e in per if e["log_weight_quantiles"]]))
                for q in QUANTILES
            },
            "log_weight_neg_inf_frac": float(np.mean([e["log_weight_neg_inf_frac"] for e in per])),
            "per_seed": per,
        }
        for key in ("traces_valid_frac", "answer_reaching_wrong_step_frac"):
            vals = [e.get(key) for e in per if e.get(key) is not None]
            if vals:
                out[v][key] = float(np.mean(vals))
    return out


def claims_report(
    params: dict, seeds: list[int] | None, root: str | Path, json_out: str | Path, page_out: str | Path
) -> str:
    """The claims report across seeds (default: params claims.seeds): JSON and a markdown page; returns the page."""
    seeds = seeds or params["claims"]["seeds"]
    if len(seeds) < 2:
        raise InputError("claims-report: intervals across seeds need at least 2 seeds")
    runs = {s: _load_seed(root, s, params["sampling"]["shards"]) for s in seeds}
    acc = {}
    for m in VC.MODELS:
        acc[m] = {
            metric: {
                "per_seed": {s: float(r["evals"][m][metric].mean()) for s, r in runs.items()},
                "across_seeds": mean_ci([float(r["evals"][m][metric].mean()) for r in runs.values()]),
            }
            for metric in ("greedy", "pass1")
        }
    targets = [_comparison(runs, VC.PRIMARY, b, metric) for b in VC.TARGET_BASELINES for metric in ("greedy", "pass1")]
    targets += [_comparison(runs, "vr-acc-threshold", b, "greedy") for b in VC.TARGET_BASELINES]
    # the same comparison when both train on their chosen traces alone (no original data)
    targets += [_comparison(runs, VC.PRIMARY, "rft-alone", "greedy")]
    targets += [_comparison(runs, "vr-gml-threshold-alone", "rft-alone", m) for m in ("greedy", "pass1")]
    ablations = [{"name": n, "what": what, **_comparison(runs, a, b, "greedy")} for n, a, b, what in ABLATIONS]
    selected = {
        a: {
            "n_selected": float(np.mean([r["set_metrics"][a].get("n_selected", 0) for r in runs.values()])),
            "selected_valid_frac": _mean_opt([r["set_metrics"][a].get("selected_valid_frac") for r in runs.values()]),
        }
        for a in VC.ARMS
    }
    doc = {
        "seeds": seeds,
        "constant_guess": {
            "per_seed": {s: r["constant_guess"] for s, r in runs.items()},
            "across_seeds": mean_ci([r["constant_guess"] for r in runs.values()]),
        },
        "n_test_questions": {s: len(r["evals"]["initial"]) for s, r in runs.items()},
        "accuracy": acc,
        "targets": targets,
        "ablations": ablations,
        "difficulty": _difficulty(runs),
        "weights": _weights_summary(runs, params),
        "training_sets": selected,
    }
    write_json(doc, json_out)
    page = render(doc)
    write_text(page, page_out)
    return page


def _mean_opt(values) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _pct(x, digits: int = 1) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f}"


def render(doc: dict) -> str:
    seeds = doc["seeds"]
    n_q = sorted(set(doc["n_test_questions"].values()))
    lines = [
        "# Claims across seeds",
        "",
        f"Seeds {', '.join(map(str, seeds))}; {'/'.join(map(str, n_q))} held-out questions per seed. Accuracy in %,"
        " mean across seeds with a 95% t-interval [lo, hi]; each seed also in its own column (greedy).",
        "",
        "## Held-out accuracy",
        "",
        "| model | greedy | pass@1 | " + " | ".join(f"seed {s}" for s in seeds) + " | selected | selected valid |",
        "|---|---|---|" + "---|" * len(seeds) + "---|---|",
    ]
    for m, a in doc["accuracy"].items():
        label = VC.ARMS[m].label if m in VC.ARMS else "pi_0"
        ts = doc["training_sets"].get(m, {})
        n_sel = f"{ts['n_selected']:.0f}" if m != "initial" and "n_selected" in ts else "-"
        per = " | ".join(_pct(a["greedy"]["per_seed"][s]) for s in seeds)
        lines.append(
            f"| {m}: {label} | {_ci_cell(a['greedy']['across_seeds'])} | {_ci_cell(a['pass1']['across_seeds'])} "
            f"| {per} | {n_sel} | {_pct(ts.get('selected_valid_frac'))} |"
        )
    cg = doc["constant_guess"]
    per = " | ".join(_pct(cg["per_seed"][s]) for s in seeds)
    lines.append(
        f"| constant guess: the most common training answer | {_ci_cell(cg['across_seeds'])} | - | {per} | - | - |"
    )
    lines += ["", "## Targets: the method against its baselines", ""]
    lines += _comparison_table(doc["targets"], seeds, with_verdict=True)
    lines += [
        "",
        "A target holds when the mean gain across seeds exceeds two standard errors of the per-seed gains.",
        "Per seed: the paired difference on the same test questions, with its two-sided p-value.",
        "",
        "## Ablations (greedy accuracy, first minus second)",
        "",
    ]
    lines += _comparison_table(doc["ablations"], seeds, with_verdict=False)
    d = doc["difficulty"]
    lines += [
        "",
        "## Difficulty bins (by the initial model's own accuracy on each question)",
        "",
        "Share of training questions, of RFT's kept traces and of each VR arm's selected weight mass, in %:",
        "",
        "| | " + " | ".join(d["labels"]) + " |",
        "|---|" + "---|" * len(d["labels"]),
    ]
    for k, v in d["mean_train_shares"].items():
        lines.append(f"| {k} | " + " | ".join(_pct(x, 0) for x in v) + " |")
    lines += [
        "",
        "Greedy accuracy gain over the initial model per test-question bin, in points (share of test questions: "
        + ", ".join(f"{lab} {_pct(x, 0)}%" for lab, x in zip(d["labels"], d["mean_test_question_shares"], strict=True))
        + "):",
        "",
        "| model | " + " | ".join(d["labels"]) + " |",
        "|---|" + "---|" * len(d["labels"]),
    ]
    for m, v in d["mean_greedy_gain_by_bin"].items():
        lines.append(f"| {m} | " + " | ".join("-" if x is None else f"{100 * x:+.1f}" for x in v) + " |")
    lines += [
        "",
        "## Importance weights",
        "",
        "| variant | ESS/K | IWAE bound K=1 / 2 / 4 / 8 (questions where finite) | log w p05 / p50 / p95 | -inf"
        " | traces valid | wrong step among answer-reaching |",
        "|---|---|---|---|---|---|---|",
    ]
    for v, w in doc["weights"].items():
        fin = w["iwae_bound_finite_frac_by_k"]
        bounds = " / ".join(
            f"{w['iwae_bound_by_k'][k]['mean']:.2f} ({_pct(fin.get(k), 0)}%)"
            for k in ("1", "2", "4", "8")
            if k in w["iwae_bound_by_k"]
        )
        q = w["log_weight_quantiles"]
        lines.append(
            f"| {v} | {w['ess_over_k']['mean']:.2f} | {bounds} | {q['p05']:.2f} / {q['p50']:.2f} / {q['p95']:.2f} "
            f"| {_pct(w['log_weight_neg_inf_frac'], 0)}% | {_pct(w.get('traces_valid_frac'), 0)}% "
            f"| {_pct(w.get('answer_reaching_wrong_step_frac'), 0)}% |"
        )
    lines += [
        "",
        "IWAE bound: mean over questions of the bound averaged over size-K subsets of the weights, among"
        " questions where it is finite (all-zero weights make it -inf).",
        "",
        "Wrong step among answer-reaching: of the traces after which pi_0 gives the reference answer probability"
        " > 0.5, the share with a wrong step (the answer is reached by copying, not by computing).",
        "",
    ]
    return "\n".join(lines)


def _comparison_table(rows: list[dict], seeds: list[int], with_verdict: bool) -> list[str]:
    head = "| comparison | metric | mean gain [95% CI] | SE | " + " | ".join(f"seed {s} (p)" for s in seeds)
    head += " | > 2 SE |" if with_verdict else " |"
    out = [head, "|---|---|---|---|" + "---|" * len(seeds) + ("---|" if with_verdict else "")]
    for r in rows:
        a = r["across_seeds"]
        name = r.get("name", f"{r['a']} - {r['b']}")
        if "name" in r:
            name = f"{name}: {r['a']} - {r['b']}"
        per = " | ".join(f"{100 * p['mean']:+.1f} ({p['p_value']:.2g})" for p in r["per_seed"].values())
        cells = f"| {name} | {r['metric']} | {_ci_cell(a)} | {100 * a['se']:.1f} | {per} |"
        if with_verdict:
            cells += " **yes** |" if a["beats_by_2se"] else " no |"
        out.append(cells)
    return out

"""Stage ``claims_report``: the claims plan applied to the claims run (JSON + a markdown page).

It reads the pre-registered plan (``claims.plan``) and does what it says: which seeds are
included (a rule on pi_0 alone), each family's comparisons across seeds (paired t and exact
sign-flip, both Holm-adjusted within the family, a 95% t-interval), for all seeds and for the
included ones. Beside the verdicts: every model's accuracy per seed, what each arm's training set
covers, the mechanism (difficulty bins, trace granularity; claims_mechanism.py), the importance
weights' diagnostics, pi_0's training per seed, and where the numbers came from (commit, date,
CPU, params hash: provenance.py). The page is claims_page.render of the JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from varreason import claims as VC
from varreason import claims_mechanism as M
from varreason import paths as P
from varreason.claims_page import render
from varreason.claims_tests import across_seeds, adjust_family
from varreason.corpus import own_accuracy, per_question
from varreason.io import InputError, read_parquet, write_json, write_text
from varreason.provenance import provenance
from varreason.stats import mean_ci, paired_difference


def _at(root: str | Path, pattern: str, seed: int, **kw) -> Path:
    """A claims path (claims.py layout) under ``root`` instead of the default folder."""
    return Path(root) / pattern.format(seed=seed, **kw)[len(VC.ROOT) + 1 :]


def _load_seed(root, seed: int, plan: VC.Plan, shards: int) -> dict:
    models = plan.models_of(seed)
    evals = {m: per_question(_at(root, VC.EVAL_SAMPLES, seed, model=m)) for m in models}
    ids = evals["initial"].index
    for m, e in evals.items():
        if not e.index.equals(ids):
            raise InputError(f"{_at(root, VC.EVAL_SAMPLES, seed, model=m)}: not the same test questions as initial")
    arms = models[1:]
    sets = {}
    for arm in arms:
        path = _at(root, VC.ARM_SET, seed, arm=arm)
        sets[arm] = read_parquet(path, ["question_id", "source", "weight", "trace"]) if path.exists() else None
    train = read_parquet(
        _at(root, VC.SEED_DIR + P.PREPARED_TRAIN, seed), ["question_id", "question", "trace", "answer"]
    )
    test = read_parquet(_at(root, VC.SEED_DIR + P.PREPARED_TEST, seed), ["answer"])
    log = _at(root, VC.SEED_DIR + P.INITIAL_MODEL, seed) / P.TRAIN_LOG
    history = json.loads(log.read_text())["history"] if log.exists() else []
    variants = plan.variants_of(seed)
    return {
        # what a model that ignores the question gets: always the most common training answer
        "constant_guess": float((test["answer"] == train["answer"].mode().iloc[0]).mean()),
        "evals": evals,
        "train": train,
        "pi0_final_loss": history[-1]["smoothed_loss"] if history else None,
        "train_difficulty": own_accuracy(
            [_at(root, VC.SEED_DIR + P.INITIAL_SAMPLES, seed, shard=s) for s in range(shards)]
        ),
        "sets": sets,
        "set_metrics": {a: json.loads(_at(root, VC.ARM_SET_METRICS, seed, arm=a).read_text()) for a in arms},
        "weight_metrics": {v: json.loads(_at(root, VC.WEIGHT_METRICS, seed, variant=v).read_text()) for v in variants},
        "weights": {
            v: read_parquet(
                _at(root, VC.WEIGHTS, seed, variant=v),
                ["question_id", "question", "trace", "log_weight", "log_ratio", "log_likelihood", "finish_reason"],
            )
            for v in variants
        },
    }


def inclusion(runs: dict, plan: VC.Plan) -> dict:
    """The plan's seed-inclusion rule, per seed: pi_0's pass@1 against the constant guess (+ margin)."""
    margin = float(plan.inclusion.get("margin", 0.0))
    out = {}
    for s, r in runs.items():
        pass1 = float(r["evals"]["initial"]["pass1"].mean())
        out[s] = {
            "pi0_pass1": pass1,
            "pi0_greedy": float(r["evals"]["initial"]["greedy"].mean()),
            "constant_guess": r["constant_guess"],
            "pi0_final_loss": r["pi0_final_loss"],
            "included": pass1 > r["constant_guess"] + margin,
        }
    return out


def _accuracy(runs: dict, included: list[int], level: float) -> dict:
    acc = {}
    for m in VC.MODELS:
        seeds = [s for s, r in runs.items() if m in r["evals"]]
        if not seeds:
            continue
        acc[m] = {}
        for metric in ("greedy", "pass1"):
            per = {s: float(runs[s]["evals"][m][metric].mean()) for s in seeds}
            inc = [v for s, v in per.items() if s in included]
            acc[m][metric] = {
                "per_seed": per,
                "all": mean_ci(list(per.values()), level),
                "included": mean_ci(inc, level) if inc else None,
            }
    return acc


def _family(runs: dict, comps: list[dict], included: list[int], alpha: float, level: float) -> list[dict]:
    """Each comparison of a family on the seeds that have both arms: per seed, across all, across included."""
    rows = []
    for c in comps:
        a, b, metric = c["a"], c["b"], c["metric"]
        seeds = [s for s, r in runs.items() if a in r["evals"] and b in r["evals"]]
        per_seed = {s: paired_difference(runs[s]["evals"][a][metric], runs[s]["evals"][b][metric]) for s in seeds}
        means = {s: d["mean"] for s, d in per_seed.items()}
        rows.append(
            {
                **c,
                "per_seed": per_seed,
                "all": across_seeds(means, level),
                "included": across_seeds({s: v for s, v in means.items() if s in included}, level),
            }
        )
    for subset in ("all", "included"):
        for r, adjusted in zip(rows, adjust_family([r[subset] for r in rows], alpha), strict=True):
            r[subset] = adjusted
    return rows


def claims_report(params: dict, plan: str | Path, root: str | Path, json_out: str | Path, page_out: str | Path) -> str:
    """The claims report of the run under ``root`` as the plan registers it: JSON and a page; returns the page."""
    plan_ = VC.load_plan(plan)
    if len(plan_.seeds) < 2:
        raise InputError(f"claims-report: {plan}: intervals across seeds need at least 2 seeds")
    runs = {s: _load_seed(root, s, plan_, params["sampling"]["shards"]) for s in plan_.seeds}
    incl = inclusion(runs, plan_)
    included = [s for s, v in incl.items() if v["included"]]
    arms = [a for a in VC.ARMS if plan_.arm_seeds(a)]
    synthetic = params["task"]["source"] == "synthetic"
    doc = {
        "provenance": provenance(params, {"plan": plan}, own=(VC.REPORT_JSON, VC.REPORT_PAGE)),
        "arms": {a: VC.ARMS[a].label for a in arms},
        "plan": {"path": str(plan), "registered": plan_.registered, "tiers": plan_.tiers, "tests": plan_.raw["tests"]},
        "seeds": {
            "all": plan_.seeds,
            "included": included,
            "per_arm": {a: plan_.arm_seeds(a) for a in arms},
        },
        "inclusion": {"rule": plan_.inclusion, "per_seed": incl},
        "pi0_failure_rate": float(np.mean([not v["included"] for v in incl.values()])),
        "n_test_questions": {s: len(r["evals"]["initial"]) for s, r in runs.items()},
        "accuracy": _accuracy(runs, included, plan_.level),
        "constant_guess": mean_ci([r["constant_guess"] for r in runs.values()], plan_.level),
        "families": {
            n: _family(runs, comps, included, plan_.alpha, plan_.level) for n, comps in plan_.families.items()
        },
        "coverage": M.coverage(runs, arms),
        "difficulty": M.difficulty(runs, arms),
        "granularity": M.granularity(runs, arms, params["task"]["modulus"]) if synthetic else None,
        "weights": M.weights_summary(runs, synthetic, params["task"]["modulus"]),
    }
    write_json(doc, json_out)
    page = render(doc)
    write_text(page, page_out)
    return page

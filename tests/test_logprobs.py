import copy
import shutil

import pytest
import torch
from transformers import Qwen3ForCausalLM

from varreason.logprobs import (
    body_and_head,
    hidden_logps,
    pad_batch,
    position_ids_from_mask,
    score_completions,
    token_batches,
    token_logps,
)


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("lengths", [[5], [3, 7, 1], [9, 2, 4, 6]])
def test_token_logps_equal_full_log_softmax(side, lengths):
    torch.manual_seed(sum(lengths))
    vocab = 37
    seqs = [torch.randint(0, vocab, (n,)).tolist() for n in lengths]
    ids, mask = pad_batch(seqs, pad_id=0, side=side)
    logits = torch.randn(ids.shape[0], ids.shape[1], vocab) * 3
    got = token_logps(logits, ids, chunk_rows=2)
    ref = torch.log_softmax(logits.double(), dim=-1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    assert got.shape == ids.shape
    # every real (non-pad) position matches the full log_softmax reference
    assert torch.allclose(got[mask.bool()].double(), ref[mask.bool()], atol=1e-5)


def test_pad_batch_sides_and_positions():
    ids, mask = pad_batch([[1, 2, 3], [4]], pad_id=0, side="left")
    assert ids.tolist() == [[1, 2, 3], [0, 0, 4]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert position_ids_from_mask(mask).tolist() == [[0, 1, 2], [0, 0, 0]]
    ids, mask = pad_batch([[1, 2, 3], [4]], pad_id=9, side="right")
    assert ids.tolist() == [[1, 2, 3], [4, 9, 9]]
    with pytest.raises(ValueError, match="padding side"):
        pad_batch([[1]], 0, "middle")


@pytest.mark.parametrize("side", ["left", "right"])
def test_score_completions_match_unpadded_forward(tiny_model, side):
    torch.manual_seed(1)
    prompts = [[5, 6, 7], [8], [9, 10, 11, 12, 13]]
    completions = [[14, 15], [16, 17, 18, 19], [20]]
    got = score_completions(tiny_model, prompts, completions, pad_id=0, batch_size=2, padding_side=side)
    for p, c, g in zip(prompts, completions, got, strict=True):
        ids = torch.tensor([p + c])
        with torch.no_grad():
            logits = tiny_model(input_ids=ids).logits.double()
        ref = torch.log_softmax(logits[0, :-1], -1).gather(-1, ids[0, 1:, None]).squeeze(-1)[len(p) - 1 :]
        assert len(g) == len(c)
        assert torch.allclose(torch.tensor(g, dtype=torch.double), ref, atol=1e-5)


# --- the chunked, token-budget scorer against a float64 brute force ------------------------------

PROMPTS = [[5, 6, 7], [8], [9, 10, 11, 12, 13], [3, 4], [20, 21, 22, 23], [7], [30, 31, 32]]
COMPLETIONS = [[14, 15], [16, 17, 18, 19, 20, 21, 22], [20], [], [24, 25, 26], [8, 9, 10, 11], [33, 34, 35, 36, 37]]


def _brute_force(model, prompts, completions):
    """Each row alone, unpadded, full log_softmax in float64 over a float64 copy of the model."""
    ref = copy.deepcopy(model).double()
    out = []
    for p, c in zip(prompts, completions, strict=True):
        if not c:
            out.append(torch.zeros(0, dtype=torch.double))
            continue
        ids = torch.tensor([list(p) + list(c)])
        with torch.no_grad():
            logp = torch.log_softmax(ref(input_ids=ids).logits[0, :-1].double(), -1)
        out.append(logp.gather(-1, ids[0, 1:, None]).squeeze(-1)[len(p) - 1 :])
    return out


def _assert_close(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert len(g) == len(w)
        assert torch.allclose(torch.tensor(g, dtype=torch.double), w, atol=1e-5, rtol=0)


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize(
    ("batch_size", "max_batch_tokens", "chunk_tokens", "vocab_block"),
    [
        (256, None, None, None),
        (2, None, 1, 0),
        (3, 20, 7, 5),
        (256, 9, 3, 16),
        (256, 1, 5, 1),
        (4, 24, 13, 48),
    ],
)
def test_chunked_scorer_equals_float64_brute_force(
    tiny_model, side, batch_size, max_batch_tokens, chunk_tokens, vocab_block
):
    # odd chunk sizes cross row boundaries, odd vocabulary blocks leave a short last block; a
    # budget of 1 token puts every row in a batch alone; rows come back in input order whatever
    # the length sort did, an empty completion as []
    got = score_completions(
        tiny_model,
        PROMPTS,
        COMPLETIONS,
        pad_id=0,
        batch_size=batch_size,
        padding_side=side,
        max_batch_tokens=max_batch_tokens,
        chunk_tokens=chunk_tokens,
        vocab_block=vocab_block,
    )
    assert got[3] == []
    _assert_close(got, _brute_force(tiny_model, PROMPTS, COMPLETIONS))


def test_scorer_uses_the_body_and_head_split(tiny_model):
    body, head = body_and_head(tiny_model)
    assert head is tiny_model.get_output_embeddings() and body is tiny_model.model


def test_scoring_builds_no_autograd_graph(tiny_model):
    """Scoring keeps no layer's activations for a backward pass (it did once: 6.7 GB for 4096 tokens of SmolLM2)."""
    assert any(p.requires_grad for p in tiny_model.parameters())
    seen = []
    hook = tiny_model.model.layers[0].register_forward_hook(lambda m, i, o: seen.append(torch.is_grad_enabled()))
    try:
        score_completions(tiny_model, [[1, 2, 3]], [[4, 5]], pad_id=0)
    finally:
        hook.remove()
    assert seen == [False] and torch.is_grad_enabled()


class _SoftCapped(Qwen3ForCausalLM):
    """Logits post-processed after the output layer: the body/head split must not be used."""

    def forward(self, *args, **kwargs):
        out = super().forward(*args, **kwargs)
        out.logits = 2.0 * torch.tanh(out.logits / 2.0)
        return out


def test_models_that_post_process_logits_are_scored_from_their_logits(tiny_model):
    capped = _SoftCapped(tiny_model.config).eval()
    capped.load_state_dict(tiny_model.state_dict())
    assert body_and_head(capped) is None
    for side in ("left", "right"):
        got = score_completions(capped, PROMPTS, COMPLETIONS, pad_id=0, batch_size=3, padding_side=side, chunk_tokens=4)
        _assert_close(got, _brute_force(capped, PROMPTS, COMPLETIONS))


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize(("chunk_tokens", "vocab_block"), [(1, None), (3, 1), (7, 10), (64, 100), (5, 101), (23, 64)])
def test_hidden_logps_equal_full_log_softmax(chunk_tokens, vocab_block, bias):
    torch.manual_seed(chunk_tokens)
    head = torch.nn.Linear(16, 101, bias=bias)
    hidden = torch.randn(23, 16) * 2
    targets = torch.randint(0, 101, (23,))
    targets[:3] = torch.tensor([0, 100, 99])  # the first and last vocabulary rows
    got = hidden_logps(hidden, head, targets, chunk_tokens, vocab_block)
    logits = hidden.double() @ head.weight.double().T + (head.bias.double() if bias else 0)
    ref = torch.log_softmax(logits, -1).gather(-1, targets[:, None]).squeeze(-1)
    assert got.dtype == torch.float32 and got.shape == targets.shape
    assert torch.allclose(got.double(), ref, atol=1e-5, rtol=0)


def test_token_batches_sort_by_length_and_respect_the_budget():
    lengths = [3, 9, 1, 9, 4, 12, 2]
    batches = token_batches(lengths, batch_size=3, max_batch_tokens=20)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    flat = [i for b in batches for i in b]
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)  # longest first
    for b in batches:
        assert len(b) <= 3
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 20
    assert batches[0] == [5]  # 12 tokens: a second row would need 24 > 20
    # a row longer than the budget is a batch alone; no budget: rows only
    assert token_batches([50, 5], batch_size=8, max_batch_tokens=10) == [[0], [1]]
    assert token_batches([1, 2, 3], batch_size=2, max_batch_tokens=None) == [[2, 1], [0]]
    with pytest.raises(ValueError, match="batch_size"):
        token_batches([1], batch_size=0, max_batch_tokens=None)


def test_score_completions_rejects_bad_input(tiny_model):
    with pytest.raises(ValueError, match="empty prompt"):
        score_completions(tiny_model, [[1], []], [[2], [3]], pad_id=0)
    with pytest.raises(ValueError, match="completions"):
        score_completions(tiny_model, [[1]], [[2], [3]], pad_id=0)
    assert score_completions(tiny_model, [[1], [2]], [[], []], pad_id=0) == [[], []]


def test_backend_score_caps_batches_at_the_token_budget(tiny_model, tmp_path, monkeypatch):
    """scoring.batch_tokens reaches the scorer: padded batches stay within it, log-probs do not change."""
    import varreason.logprobs as lp
    from varreason import backends

    tiny_model.save_pretrained(tmp_path)
    seen: list[int] = []
    real_pad_batch = lp.pad_batch

    def spy(seqs, pad_id, side):
        seen.append(len(seqs) * max(len(s) for s in seqs))  # padded tokens in this batch
        return real_pad_batch(seqs, pad_id, side)

    monkeypatch.setattr(lp, "pad_batch", spy)
    kw = dict(backend="hf", pad_id=0, batch_size=64, desc="t")
    whole = backends.score(tmp_path, PROMPTS, COMPLETIONS, **kw)
    assert len(seen) == 1  # no budget: one batch of every row
    seen.clear()
    capped = backends.score(tmp_path, PROMPTS, COMPLETIONS, batch_tokens=12, **kw)
    assert len(seen) > 1 and max(seen) <= 12
    for got, want in zip(capped, whole, strict=True):
        assert got == pytest.approx(want, abs=1e-6)


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="torch.compile on CPU needs cc")
@pytest.mark.parametrize("side", ["left", "right"])
def test_fused_body_agrees_with_the_unfused_path(tiny_model, side):
    """compile_body (torch.compile, dynamic shapes): float32 log-probs within 1e-5 of float64 and
    within 2e-6 of the unfused path on the CPU (reduction order only), for batches of every width."""
    from torch._dynamo.utils import counters

    from varreason.logprobs import _COMPILED

    torch._dynamo.reset()
    counters.clear()
    kw = dict(pad_id=0, padding_side=side, max_batch_tokens=20, batch_size=3)
    fused = score_completions(tiny_model, PROMPTS, COMPLETIONS, compile_body=True, **kw)
    plain = score_completions(tiny_model, PROMPTS, COMPLETIONS, **kw)
    assert tiny_model.model in _COMPILED
    _assert_close(fused, _brute_force(tiny_model, PROMPTS, COMPLETIONS))
    worst = max(abs(a - b) for f, p in zip(fused, plain, strict=True) for a, b in zip(f, p, strict=True))
    graphs = counters["stats"]["unique_graphs"]
    print(f"\nfused vs unfused ({side} padding): max |difference| {worst:.1e}, graphs {graphs}")
    assert worst <= 2e-6
    # batches of four widths (with and without padding) ran through few graphs, not one per width
    assert 1 <= graphs <= 3, counters["stats"]

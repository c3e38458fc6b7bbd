import copy

import pytest
import torch
import torch.nn.functional as F

from varreason.training import (
    Example,
    collate,
    global_batch_indices,
    loss_normaliser,
    loss_tokens,
    train_sft,
    weighted_sft_loss,
)

EXAMPLES = [
    Example([5, 6, 7], [8, 9, 1]),
    Example([10], [11, 12, 13, 14, 15, 16, 1]),
    Example([15, 16, 17, 18], [19, 1]),
]


def _plain_sft_loss(model, batch):
    """Reference: token-mean cross-entropy over completion tokens (HF-style -100 labels)."""
    labels = batch["input_ids"].clone()
    labels[batch["loss_mask"] == 0] = -100
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100)


def _grads(model):
    return [p.grad.clone() for p in model.parameters() if p.grad is not None]


def test_weighted_sft_with_unit_weights_equals_plain_sft(tiny_model):
    batch = collate(EXAMPLES, pad_id=0)
    a, b = copy.deepcopy(tiny_model), copy.deepcopy(tiny_model)
    logits = a(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    ours = weighted_sft_loss(logits, batch["input_ids"], batch["loss_mask"], batch["weights"])
    ours.backward()
    ref = _plain_sft_loss(b, batch)
    ref.backward()
    assert ours.item() == pytest.approx(ref.item(), abs=1e-6)
    for ga, gb in zip(_grads(a), _grads(b), strict=True):
        assert torch.allclose(ga, gb, atol=1e-6)


def test_weights_scale_each_sequence():
    torch.manual_seed(0)
    batch = collate(EXAMPLES, pad_id=0)
    logits = torch.randn(*batch["input_ids"].shape, 40)
    ones = weighted_sft_loss(logits, batch["input_ids"], batch["loss_mask"], torch.ones(3))
    zero_last = weighted_sft_loss(logits, batch["input_ids"], batch["loss_mask"], torch.tensor([1.0, 1.0, 0.0]))
    only_last = weighted_sft_loss(logits, batch["input_ids"], batch["loss_mask"], torch.tensor([0.0, 0.0, 1.0]))
    assert ones.item() == pytest.approx(zero_last.item() + only_last.item(), rel=1e-6)
    assert 0 < only_last.item() < ones.item()


def test_collate_masks_completion_only():
    batch = collate(EXAMPLES[:2], pad_id=0)
    assert batch["input_ids"].tolist()[0] == [5, 6, 7, 8, 9, 1, 0, 0]
    assert batch["loss_mask"].tolist()[0] == [0, 0, 0, 1, 1, 1, 0, 0]
    assert batch["loss_mask"].tolist()[1] == [0, 1, 1, 1, 1, 1, 1, 1]
    assert batch["attention_mask"].tolist()[0] == [1, 1, 1, 1, 1, 1, 0, 0]


def test_train_sft_lowers_the_loss_and_is_deterministic(tiny_model):
    runs = []
    for _ in range(2):
        model = copy.deepcopy(tiny_model)
        history, model = train_sft(
            model, EXAMPLES * 4, pad_id=0, steps=60, batch_size=4, lr=1e-2, warmup_frac=0.1, weight_decay=0.0, seed=3
        )
        runs.append((history, model))
    h = runs[0][0]
    assert h[-1]["loss"] < 0.5 * h[0]["loss"]
    assert [x["loss"] for x in runs[0][0]] == [x["loss"] for x in runs[1][0]]
    with pytest.raises(ValueError, match="no training examples"):
        train_sft(tiny_model, [], pad_id=0, steps=1, batch_size=1, lr=1e-3, warmup_frac=0, weight_decay=0, seed=0)


def test_loss_normaliser_is_batch_size_times_mean_completion_tokens():
    # completions of 3, 7 and 2 tokens, each after a prompt: every one is scored
    assert loss_normaliser(EXAMPLES, batch_size=6) == pytest.approx(6 * 12 / 3)
    # without a prompt the first completion token has nothing to be predicted from
    assert loss_tokens(Example([], [4, 5, 1])) == 2
    assert loss_normaliser([Example([], [4, 5, 1]), Example([3], [4])], batch_size=2) == pytest.approx(2 * 1.5)
    with pytest.raises(ValueError, match="no completion tokens"):
        loss_normaliser([Example([], [4])], batch_size=1)


def test_weighted_sft_loss_with_a_constant_normaliser_matches_brute_force():
    torch.manual_seed(0)
    weights = [0.5, 2.0, 1.25]
    examples = [Example(e.prompt_ids, e.completion_ids, w) for e, w in zip(EXAMPLES, weights, strict=True)]
    batch = collate(examples, pad_id=0)
    logits = torch.randn(*batch["input_ids"].shape, 40, dtype=torch.float64)
    c = loss_normaliser(examples, batch_size=len(examples))
    ours = weighted_sft_loss(logits, batch["input_ids"], batch["loss_mask"], batch["weights"], normaliser=c)
    total = 0.0
    for i, e in enumerate(examples):
        row = e.prompt_ids + e.completion_ids
        for t in range(len(e.prompt_ids), len(row)):  # every completion token, predicted from position t-1
            total -= e.weight * torch.log_softmax(logits[i, t - 1], -1)[row[t]].item()
    assert ours.item() == pytest.approx(total / c, rel=1e-6)
    # a constant normaliser: the loss of a batch is the sum of its examples' losses
    halves = [
        weighted_sft_loss(logits[s], batch["input_ids"][s], batch["loss_mask"][s], batch["weights"][s], normaliser=c)
        for s in (slice(0, 1), slice(1, 3))
    ]
    assert sum(h.item() for h in halves) == pytest.approx(ours.item(), rel=1e-6)


def test_averaging_the_gradients_of_two_half_batches_gives_the_whole_batch_gradient(tiny_model):
    """The DDP view: 2 processes each take half the global batch and their gradients are averaged."""
    doubled = [e for e in EXAMPLES for _ in range(2)]  # halves of 13 and 11 completion tokens
    weights = [1, 0.5, 2, 1.5, 1, 0.25]
    examples = [Example(e.prompt_ids, e.completion_ids, w) for e, w in zip(doubled, weights, strict=True)]
    c = loss_normaliser(examples, batch_size=len(examples))

    def grads(model, part, normaliser):
        model.zero_grad()
        batch = collate(part, pad_id=0)  # each half padded to its own width, as on its own process
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        weighted_sft_loss(logits, batch["input_ids"], batch["loss_mask"], batch["weights"], normaliser).backward()
        return _grads(model)

    model = copy.deepcopy(tiny_model).double()
    whole = grads(model, examples, c)
    # each of P=2 shards divides by c / P, so the average over shards is sum(shards) / c
    left, right = grads(model, examples[:3], c / 2), grads(model, examples[3:], c / 2)
    for g, a, b in zip(whole, left, right, strict=True):
        assert torch.allclose((a + b) / 2, g, rtol=1e-10, atol=1e-12)
    # the per-batch token mean (the old normaliser) would not split this way: the halves differ in length
    assert sum(len(e.completion_ids) for e in examples[:3]) != sum(len(e.completion_ids) for e in examples[3:])
    left, right = grads(model, examples[:3], None), grads(model, examples[3:], None)
    whole = grads(model, examples, None)
    assert not all(torch.allclose((a + b) / 2, g) for g, a, b in zip(whole, left, right, strict=True))


def test_global_batches_are_one_table_split_into_shards():
    table = global_batch_indices(10, steps=5, batch_size=8, seed=3)
    assert table.shape == (5, 8)
    assert torch.equal(table, global_batch_indices(10, steps=5, batch_size=8, seed=3))
    assert not torch.equal(table, global_batch_indices(10, steps=5, batch_size=8, seed=4))
    assert int(table.min()) >= 0 and int(table.max()) < 10


def test_gradient_accumulation_trains_like_one_batch(tiny_model):
    runs = {}
    for accum in (1, 2, 4):
        history, model = train_sft(
            copy.deepcopy(tiny_model), EXAMPLES * 4, pad_id=0, steps=8, batch_size=8, lr=1e-2, warmup_frac=0.25,
            weight_decay=0.01, seed=1, grad_accum_steps=accum, log_every=1,
        )  # fmt: skip
        runs[accum] = ([h["loss"] for h in history], model.state_dict())
    losses, weights = runs[1]
    assert len(losses) == 8
    for accum in (2, 4):
        assert runs[accum][0] == pytest.approx(losses, rel=1e-5)
        for k, v in weights.items():
            assert torch.allclose(runs[accum][1][k], v, atol=1e-5), k
    with pytest.raises(ValueError, match="must divide by processes x grad_accum_steps"):
        train_sft(
            tiny_model, EXAMPLES, pad_id=0, steps=1, batch_size=3, lr=1e-3, warmup_frac=0, weight_decay=0, seed=0,
            grad_accum_steps=2,
        )  # fmt: skip


def test_train_sft_calls_save_with_the_full_state_dict(tiny_model):
    seen = {}

    def save(model, state_dict):
        seen["model"], seen["state_dict"] = model, state_dict

    history, model = train_sft(
        copy.deepcopy(tiny_model), EXAMPLES, pad_id=0, steps=3, batch_size=3, lr=1e-3, warmup_frac=0,
        weight_decay=0, seed=0, save=save,
    )  # fmt: skip
    assert seen["model"] is model and not model.training
    assert seen["state_dict"].keys() == model.state_dict().keys()
    assert [h["step"] for h in history] == [1, 3]


def test_trainable_layers_freezes_all_but_the_top_layers(tiny_model):
    from varreason.io import InputError
    from varreason.modeling import freeze_lower_layers

    model = copy.deepcopy(tiny_model)
    total = sum(p.numel() for p in model.parameters())
    assert freeze_lower_layers(model, None) == total  # null: everything trains
    top = model.model.layers[-1]
    n = freeze_lower_layers(model, 1)
    assert n == sum(p.numel() for p in top.parameters()) + model.model.norm.weight.numel()
    assert not model.model.embed_tokens.weight.requires_grad
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_sft(model, EXAMPLES, pad_id=0, steps=3, batch_size=2, lr=1e-2, warmup_frac=0.0, weight_decay=0.0, seed=0)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(("model.layers.0.", "model.norm.")) for k in changed)
    with pytest.raises(InputError, match="model.trainable_layers: 5 is not within 1..1"):
        freeze_lower_layers(model, 5)

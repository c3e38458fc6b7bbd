import copy

import pytest
import torch
import torch.nn.functional as F

from varreason.training import Example, collate, train_sft, weighted_sft_loss

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

"""Weighted supervised fine-tuning with accelerate (single process on a CPU, FSDP/DeepSpeed at scale).

One loss serves every training stage: SFT on the original data, the posterior with the hint,
the weighted SFT of the final model (rho~ as per-sequence weights) and the baselines.
Simplifications: a fixed number of optimiser steps (not epochs) so that arms compare at equal
compute; loss only on completion tokens; no gradient accumulation or mixed precision knobs yet.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader, Dataset, RandomSampler
from transformers import get_cosine_schedule_with_warmup

from varreason.logprobs import pad_batch, token_logps
from varreason.progress import progress


@dataclass
class Example:
    prompt_ids: list[int]
    completion_ids: list[int]
    weight: float = 1.0


def weighted_sft_loss(
    logits: torch.Tensor, input_ids: torch.Tensor, loss_mask: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """sum_i w_i * NLL(completion_i) / (number of completion tokens).

    With every weight 1 this is the token-mean cross-entropy of plain SFT.
    """
    logps = token_logps(logits[:, :-1], input_ids[:, 1:])
    mask = loss_mask[:, 1:].to(logps.dtype)
    per_sequence_nll = -(logps * mask).sum(-1)
    return (weights.to(logps.dtype) * per_sequence_nll).sum() / mask.sum().clamp(min=1)


class _Examples(Dataset):
    def __init__(self, examples: Sequence[Example]):
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> Example:
        return self.examples[i]


def collate(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch with a mask over completion tokens only."""
    rows = [e.prompt_ids + e.completion_ids for e in examples]
    ids, attn = pad_batch(rows, pad_id, "right")
    loss_mask = torch.zeros_like(ids)
    for i, e in enumerate(examples):
        loss_mask[i, len(e.prompt_ids) : len(e.prompt_ids) + len(e.completion_ids)] = 1
    weights = torch.tensor([e.weight for e in examples], dtype=torch.float32)
    return {"input_ids": ids, "attention_mask": attn, "loss_mask": loss_mask, "weights": weights}


def train_sft(
    model: torch.nn.Module,
    examples: Sequence[Example],
    *,
    pad_id: int,
    steps: int,
    batch_size: int,
    lr: float,
    warmup_frac: float,
    weight_decay: float,
    seed: int,
    desc: str = "training",
) -> tuple[list[dict], torch.nn.Module]:
    """Train ``model`` in place for ``steps`` optimiser steps; returns (loss history, the unwrapped model)."""
    if not examples:
        raise ValueError(f"{desc}: no training examples")
    accelerator = Accelerator()
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(
        _Examples(examples),
        batch_size=batch_size,
        sampler=RandomSampler(examples, replacement=True, num_samples=steps * batch_size, generator=generator),
        collate_fn=lambda b: collate(b, pad_id),
        drop_last=True,
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, betas=(0.9, 0.95))
    scheduler = get_cosine_schedule_with_warmup(optimizer, math.ceil(warmup_frac * steps), steps)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    model.train()
    history: list[dict] = []
    running = None
    bar = progress(loader, desc=desc, total=steps, unit="step")
    for step, batch in enumerate(bar, start=1):
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss = weighted_sft_loss(logits, batch["input_ids"], batch["loss_mask"], batch["weights"])
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        value = loss.item()
        running = value if running is None else 0.95 * running + 0.05 * value
        if step == 1 or step % 50 == 0 or step == steps:
            history.append({"step": step, "loss": value, "smoothed_loss": running})
            bar.set_postfix(loss=f"{running:.3f}")
    model.eval()
    return history, accelerator.unwrap_model(model)

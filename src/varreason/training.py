"""Weighted supervised fine-tuning with accelerate: one CPU process, or DDP/FSDP/DeepSpeed at scale.

One loss serves every training stage: SFT on the original data, the posterior with the hint,
the weighted SFT of the final model (rho~ as per-sequence weights) and the baselines.
Simplifications: a fixed number of optimiser steps (not epochs) so that arms compare at equal
compute; loss only on completion tokens.

Distributed runs (``accelerate launch``, see workflow/accelerate/) train on exactly the data a
single process would: ``batch_size`` is the global batch of one optimiser step, its example
indices are drawn from the seeded generator identically on every process, and each process takes
its slice (``batch_size / (processes * grad_accum_steps)`` examples per forward). The loss is
normalised by a constant of the training set (see ``loss_normaliser``), not by the tokens of a
batch, so the gradient of a step does not depend on how its global batch is split.

Checkpoints (``Checkpointing``): every N steps and/or M minutes, accelerate's ``save_state``
(model, optimiser, scheduler, RNG states; sharded the same way under FSDP) plus the step and loss
history, into a temp folder renamed when whole. A restarted run loads the newest one and goes on
from the next step; the batch of every step comes from the seeded index table, so the data
position is the step itself, and on CPU the resumed run ends with the same weights bit for bit.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator, DistributedType
from transformers import get_cosine_schedule_with_warmup

from varreason.logprobs import pad_batch, token_logps
from varreason.progress import progress
from varreason.resume import (
    STATE_FILE,
    checkpoints,
    exit_if_stop_requested,
    heartbeat,
    stop_deferred,
    stop_requested,
)

MAX_GRAD_NORM = 1.0


@dataclass
class Example:
    prompt_ids: list[int]
    completion_ids: list[int]
    weight: float = 1.0


@dataclass(frozen=True)
class Checkpointing:
    """Where and how often ``train_sft`` saves its state: every ``every_steps`` optimiser steps and/or
    every ``every_minutes`` minutes (None: not by that measure), the newest ``keep`` kept in ``dir``."""

    dir: Path
    every_steps: int | None = None
    every_minutes: float | None = None
    keep: int = 2


# Seconds to sleep after each optimiser step: makes a tiny run as long as a real one, so that the
# tests can hit a SLURM time limit or a kill in the middle of training. Unset: no sleep.
STEP_SLEEP_ENV = "VARREASON_TEST_STEP_SLEEP_S"


def _save_checkpoint(accelerator: Accelerator, ckpt: Checkpointing, step: int, state: dict) -> None:
    final = ckpt.dir / f"step-{step:08d}"
    tmp = final.with_name(final.name + ".tmp")
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))  # every process writes its part (its RNG state, FSDP shards)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / STATE_FILE).write_text(json.dumps(state) + "\n")
        os.replace(tmp, final)
        for old in checkpoints(ckpt.dir)[: -ckpt.keep]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()


def _checkpoint_due(accelerator: Accelerator, ckpt: Checkpointing | None, step: int, since: float) -> tuple[bool, bool]:
    """(save now, stop now): one decision for every process (clocks and signals differ between them)."""
    due = ckpt is not None and (
        (ckpt.every_steps is not None and step % ckpt.every_steps == 0)
        or (ckpt.every_minutes is not None and time.monotonic() - since >= 60 * ckpt.every_minutes)
    )
    stop = stop_requested()
    if accelerator.num_processes > 1:
        flags = accelerator.reduce(torch.tensor([float(due), float(stop)], device=accelerator.device), "sum")
        due, stop = bool(flags[0] > 0), bool(flags[1] > 0)
    return due, stop


def loss_tokens(example: Example) -> int:
    """Completion tokens that the loss scores (a completion's first token needs a prompt before it)."""
    return max(len(example.completion_ids) - (0 if example.prompt_ids else 1), 0)


def loss_normaliser(examples: Sequence[Example], batch_size: int) -> float:
    """``batch_size * mean completion tokens per example`` over the whole training set.

    The constant that divides a global batch's summed weighted NLL. With every weight 1 the loss
    is then the token-mean cross-entropy in expectation over batches (exactly so for a batch of
    average length), and it does not change with how the batch is split across processes or
    accumulation steps, nor with the length mix of the batch.
    """
    if not examples:
        raise ValueError("loss_normaliser: no examples")
    mean_tokens = sum(loss_tokens(e) for e in examples) / len(examples)
    if mean_tokens <= 0:
        raise ValueError("loss_normaliser: the examples have no completion tokens to train on")
    return batch_size * mean_tokens


def weighted_sft_loss(
    logits: torch.Tensor,
    input_ids: torch.Tensor,
    loss_mask: torch.Tensor,
    weights: torch.Tensor,
    normaliser: float | None = None,
) -> torch.Tensor:
    """sum_i w_i * NLL(completion_i) / normaliser.

    ``normaliser=None`` divides by the completion tokens of this batch (with every weight 1: the
    token-mean cross-entropy of plain SFT). ``train_sft`` passes a constant instead,
    ``loss_normaliser(examples, batch_size)`` scaled for its share of the global batch, so that
    the loss is a plain sum over examples and splitting a batch into shards whose gradients add
    up (or average, with the normaliser divided by the number of shards) changes nothing.
    """
    logps = token_logps(logits[:, :-1], input_ids[:, 1:])
    mask = loss_mask[:, 1:].to(logps.dtype)
    per_sequence_nll = -(logps * mask).sum(-1)
    total = (weights.to(logps.dtype) * per_sequence_nll).sum()
    if normaliser is None:
        return total / mask.sum().clamp(min=1)
    return total / normaliser


def collate(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch with a mask over completion tokens only."""
    rows = [e.prompt_ids + e.completion_ids for e in examples]
    ids, attn = pad_batch(rows, pad_id, "right")
    loss_mask = torch.zeros_like(ids)
    for i, e in enumerate(examples):
        loss_mask[i, len(e.prompt_ids) : len(e.prompt_ids) + len(e.completion_ids)] = 1
    weights = torch.tensor([e.weight for e in examples], dtype=torch.float32)
    return {"input_ids": ids, "attention_mask": attn, "loss_mask": loss_mask, "weights": weights}


def global_batch_indices(n_examples: int, steps: int, batch_size: int, seed: int) -> torch.Tensor:
    """(steps, batch_size) example indices, drawn with replacement from a generator seeded by ``seed``.

    Every process computes the same table, so the global batch of a step is one set of examples
    whatever the number of processes.
    """
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(n_examples, (steps, batch_size), generator=generator)


def process_state():
    """accelerate's ``PartialState`` as ``train_sft``'s Accelerator will see it.

    The first ``PartialState()`` of a process fixes the distributed setup for every later one, and a
    bare one ignores ACCELERATE_USE_CPU (a multi-process CPU launch would become one process each).
    """
    from accelerate import PartialState

    return PartialState(cpu=os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes"))


def _check_launch(accelerator: Accelerator) -> None:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and accelerator.num_processes != world:
        raise RuntimeError(
            f"WORLD_SIZE={world} processes were launched but accelerate set up {accelerator.num_processes} "
            f"({accelerator.distributed_type}); each would train alone on the whole data. On a machine "
            "without GPUs set ACCELERATE_USE_CPU=true (workflow/accelerate/cpu-2proc.yaml)."
        )


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
    grad_accum_steps: int = 1,
    log_every: int = 50,
    save: Callable[[torch.nn.Module, dict[str, torch.Tensor]], None] | None = None,
    checkpointing: Checkpointing | None = None,
) -> tuple[list[dict], torch.nn.Module | None]:
    """Train ``model`` for ``steps`` optimiser steps; returns (loss history, the unwrapped model).

    ``batch_size`` is the global batch of one optimiser step, summed over processes and
    ``grad_accum_steps`` micro-batches; it must divide by ``processes * grad_accum_steps``. The
    loss of a step is ``sum_i w_i * NLL_i / loss_normaliser(examples, batch_size)`` over its global
    batch; every process backpropagates its shard's sum over that constant times the number of
    shards it averages with, so that DDP/FSDP/DeepSpeed gradient averaging and accumulation give
    exactly the gradient of one process on the whole batch (up to float summation order).

    ``history`` holds the global loss (summed over every process and micro-batch) at step 1, every
    ``log_every`` steps and the last step, with an exponential moving average; it is the same on
    every process.

    Distributed runs: the unwrapped model is returned on the main process only; the others get
    ``None`` (they must not write the output: check ``model is not None`` or
    ``PartialState().is_main_process``). Under FSDP or DeepSpeed ZeRO-3 the unwrapped model holds
    only this process's shards; pass ``save(model, state_dict)`` to write it: ``train_sft`` gathers
    the full state dict on every process (a collective), calls ``save`` on the main process only
    with the unwrapped model and that state dict (use ``model.save_pretrained(dir,
    state_dict=state_dict)``), and every process waits for it to finish.

    ``checkpointing``: save the training state as it goes and resume from the newest complete
    checkpoint in its folder. A stop signal (varreason.resume) ends the run after the current
    step with a checkpoint and ``SystemExit(EXIT_REQUEUE)``.
    """
    if not examples:
        raise ValueError(f"{desc}: no training examples")
    if grad_accum_steps < 1:
        raise ValueError(f"{desc}: grad_accum_steps must be >= 1, got {grad_accum_steps}")
    accelerator = Accelerator(gradient_accumulation_steps=grad_accum_steps, step_scheduler_with_optimizer=False)
    _check_launch(accelerator)
    if accelerator.gradient_accumulation_steps != grad_accum_steps:
        raise ValueError(
            f"{desc}: accelerate's gradient accumulation is {accelerator.gradient_accumulation_steps} (from the "
            f"launch config or ACCELERATE_GRADIENT_ACCUMULATION_STEPS) but grad_accum_steps={grad_accum_steps}; "
            "leave it out of the accelerate config"
        )
    n_proc, rank = accelerator.num_processes, accelerator.process_index
    shards = n_proc * grad_accum_steps
    if batch_size % shards:
        raise ValueError(
            f"{desc}: batch_size {batch_size} must divide by processes x grad_accum_steps = "
            f"{n_proc} x {grad_accum_steps} = {shards}"
        )
    micro = batch_size // shards
    normaliser = loss_normaliser(examples, batch_size)
    indices = global_batch_indices(len(examples), steps, batch_size, seed).view(steps, grad_accum_steps, n_proc, micro)
    if accelerator.distributed_type == DistributedType.DEEPSPEED:  # no dataloader goes through prepare()
        accelerator.state.deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = micro

    # frozen parameters (model.trainable_layers) are left out of the optimiser
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay, betas=(0.9, 0.95)
    )
    scheduler = get_cosine_schedule_with_warmup(optimizer, math.ceil(warmup_frac * steps), steps)
    # step_scheduler_with_optimizer=False: one scheduler step per optimiser step, whatever the
    # number of processes (accelerate would otherwise step it once per process).
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    model.train()
    history: list[dict] = []
    running, start = None, 0
    found = checkpoints(checkpointing.dir) if checkpointing is not None else []
    if found:
        accelerator.load_state(str(found[-1]))
        state = json.loads((found[-1] / STATE_FILE).read_text())
        start, history, running = state["step"], state["history"], state["running"]
        if accelerator.is_main_process:
            print(f"{desc}: resuming from step {start} of {steps} ({found[-1]})", flush=True)
    since = time.monotonic()
    bar = progress(
        range(start + 1, steps + 1),
        desc=desc,
        total=steps,
        initial=start,
        unit="step",
        disable=not accelerator.is_main_process,
    )

    def optimiser_step(step: int) -> float:
        """One optimiser step on the global batch of ``step``; its loss summed over every process."""
        step_loss = torch.zeros((), device=accelerator.device)
        for m in range(grad_accum_steps):
            batch = collate([examples[i] for i in indices[step - 1, m, rank].tolist()], pad_id)
            batch = {k: v.to(accelerator.device) for k, v in batch.items()}
            with accelerator.accumulate(model):
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                shard_sum = weighted_sft_loss(logits, batch["input_ids"], batch["loss_mask"], batch["weights"], 1.0)
                # accelerate divides by grad_accum_steps and DDP/FSDP/DeepSpeed average over the
                # processes: scale back up so the step's gradient is sum(shards) / normaliser.
                accelerator.backward(shard_sum * (shards / normaliser))
            if accelerator.sync_gradients != (m == grad_accum_steps - 1):  # accelerate's micro-step count is off
                raise RuntimeError(f"{desc}: step {step}: gradients synchronised at micro-batch {m + 1}")
            step_loss += shard_sum.detach() / normaliser
        accelerator.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        return accelerator.reduce(step_loss, reduction="sum").item()

    step_sleep = float(os.environ.get(STEP_SLEEP_ENV) or 0)
    with stop_deferred():
        for step in bar:
            value = optimiser_step(step)
            time.sleep(step_sleep)
            running = value if running is None else 0.95 * running + 0.05 * value
            if step == 1 or step % log_every == 0 or step == steps:
                history.append({"step": step, "loss": value, "smoothed_loss": running})
                bar.set_postfix(loss=f"{running:.3f}", refresh=False)
            if accelerator.is_main_process:
                heartbeat(f"{desc} step {step}/{steps}")
            due, stop = _checkpoint_due(accelerator, checkpointing, step, since)
            if (due or stop) and step < steps and checkpointing is not None:
                state = {"step": step, "steps": steps, "history": history, "running": running}
                _save_checkpoint(accelerator, checkpointing, step, state)
                since = time.monotonic()
            if stop and step < steps:
                exit_if_stop_requested()
    accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(model)
    unwrapped.eval()
    if save is not None:
        state_dict = accelerator.get_state_dict(model)  # a collective under FSDP/ZeRO-3: every process
        if accelerator.is_main_process:
            save(unwrapped, state_dict)
        accelerator.wait_for_everyone()
    return history, (unwrapped if accelerator.is_main_process else None)

"""Batched sampling through transformers' ``generate`` (KV cache, left padding).

Each returned sample carries the sampled token ids up to and including the first stop token, the
raw (untempered) log-prob of each sampled token under the sampling model, and a finish reason.
Determinism: batch b of a call draws from ``torch.manual_seed(seed + b)``, so the same prompts,
params and seed give the same samples on CPU (b counts from ``prompt_offset``'s batch).

``SamplingRequest`` (what to sample) is defined here too, for both backends: ``sample`` here and
``vllm_backend.vllm_sample`` take one, and ``backends.generate`` passes it to either.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache, GenerationConfig, LogitsProcessor, LogitsProcessorList

from varreason.logprobs import pad_batch, position_ids_from_mask, token_logps
from varreason.progress import progress
from varreason.prompting import stop_cut


@dataclass
class Sample:
    prompt_index: int
    sample_index: int
    seed: int
    token_ids: list[int]
    logps: list[float]
    finish_reason: str  # "stop" (a stop token was sampled) or "length"


@dataclass(frozen=True)
class SamplingRequest:
    """What to sample, the same for every backend: ``num_samples`` completions per prompt.

    It lives here, beside ``Sample`` (what comes back), rather than in a torch-free module: every
    user of it imports this module already (``vllm_backend`` for ``Sample``, ``backends`` for
    ``sample``), and .venv-vllm has torch and transformers too. Frozen, so that variants of one
    request are made with ``dataclasses.replace``; the sequences are kept as given, not copied.

    prompts: token ids per prompt (never text). stop_ids: a sample ends after the first of these.
    temperature <= 0 means greedy. seed: the call's seed (how each backend derives its draws from
    it: ``sample`` and ``vllm_backend.request_seed``). stop_strings: multi-token stops such as
    ``<|end_of_thought|>``; a sample ends after the token that completes one. batch_size: rows
    (prompt x sample) per transformers ``generate`` call, so ``max(1, batch_size // num_samples)``
    prompts a batch; vLLM schedules its own batches and ignores it. desc: the progress bar's name.
    """

    prompts: Sequence[Sequence[int]]
    stop_ids: Sequence[int]
    num_samples: int
    max_new_tokens: int
    temperature: float
    seed: int
    stop_strings: Sequence[str] = ()
    batch_size: int = 256
    desc: str = "sampling"
    prompt_offset: int = 0

    @property
    def prompts_per_batch(self) -> int:
        """Prompts per transformers ``generate`` call."""
        return max(1, self.batch_size // self.num_samples)


def _generate(model, ids: torch.Tensor, mask: torch.Tensor, config: dict, num_samples: int, **kwargs):
    """``generate`` with ``num_samples`` rows per prompt; the shared prompt is run through the model once.

    transformers repeats each prompt ``num_samples`` times before the prefill; for short completions
    after long prompts (Acc rollouts: 3 answer tokens after a 40-token trace) that prefill is most
    of the work. Here all but the last prompt token go through the model once, the KV cache is
    repeated, and ``generate`` continues from it (positions from the mask, as generate computes them).
    """
    if num_samples == 1 or ids.shape[1] < 2:
        return model.generate(
            input_ids=ids,
            attention_mask=mask,
            generation_config=GenerationConfig(num_return_sequences=num_samples, **config),
            **kwargs,
        )
    cache = DynamicCache(config=model.config)
    # transformers renamed past_key_values to cache in 5.2x (the old name still works there, deprecated)
    kw = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    positions = position_ids_from_mask(mask)
    model(
        input_ids=ids[:, :-1],
        attention_mask=mask[:, :-1],
        position_ids=positions[:, :-1],
        **{kw: cache},
        use_cache=True,
        logits_to_keep=1,
    )
    cache.batch_repeat_interleave(num_samples)
    return model.generate(
        input_ids=ids.repeat_interleave(num_samples, 0),
        attention_mask=mask.repeat_interleave(num_samples, 0),
        **{kw: cache},
        generation_config=GenerationConfig(**config),
        **kwargs,
    )


class _SampledLogps(LogitsProcessor):
    """The raw log-prob of each sampled token, one step at a time: memory for one step's logits.

    transformers' ``output_logits=True`` keeps every step's float32 logits, (rows, steps, vocab):
    about 1.2 GB per 2048-token row at Qwen3's vocabulary, so long traces on a GPU ran out of
    memory. Here a forward hook on the model keeps the latest step's raw logits (the model's own
    output, before any processor or temperature); as a logits processor it then sees the token drawn
    at the step before as the last input id and reads that token's log-prob off the logits kept for
    it (``token_logps``: gather minus logsumexp in float32). ``finish`` reads the last step's.
    """

    def __init__(self) -> None:
        self.current: torch.Tensor | None = None  # the step's raw logits, from the hook
        self.previous: torch.Tensor | None = None  # the step before's, awaiting its drawn token
        self.values: list[torch.Tensor] = []

    @contextlib.contextmanager
    def hooked(self, model):
        """The hook on ``model``'s forward for the ``with`` block (a shared prefill before generate fires it
        too: harmless, generate's first forward replaces those logits before the processor reads any)."""
        handle = model.register_forward_hook(self.hook)
        try:
            yield LogitsProcessorList([self])
        finally:
            handle.remove()

    def hook(self, module, args, output) -> None:
        self.current = output.logits[:, -1, :].float()  # a copy: the step's whole logits are not kept alive

    def _read(self, tokens: torch.Tensor) -> None:
        self.values.append(token_logps(self.previous[:, None, :], tokens[:, None])[:, 0])

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.previous is not None:
            self._read(input_ids[:, -1])
        self.previous = self.current
        return scores

    def finish(self, new_tokens: torch.Tensor) -> torch.Tensor:
        """(rows, steps) log-probs of ``new_tokens``, the tokens generate appended."""
        if new_tokens.shape[1] == 0:
            return torch.zeros(new_tokens.shape)
        self._read(new_tokens[:, -1])
        if len(self.values) != new_tokens.shape[1]:
            raise RuntimeError(f"recorded {len(self.values)} log-probs for {new_tokens.shape[1]} generated tokens")
        return torch.stack(self.values, dim=1)


def _stop_end(row: list[int], stop_ids: set[int], stop_strings: Sequence[str], tokenizer) -> int | None:
    """Tokens up to and including the first stop (a stop id, or the token completing a stop string)."""
    ends = [next((t + 1 for t, tok in enumerate(row) if tok in stop_ids), None)]
    ends += [stop_cut(row, tokenizer, s) for s in stop_strings]
    ends = [e for e in ends if e is not None]
    return min(ends) if ends else None


@torch.no_grad()
def sample(model, request: SamplingRequest, *, pad_id: int, tokenizer=None) -> list[Sample]:
    """``request.num_samples`` completions per prompt; temperature 0 means greedy.

    ``request.stop_strings`` (multi-token stops such as ``<|end_of_thought|>``, needs ``tokenizer``)
    end a sample after the token that completes the string, like a stop id.
    """
    prompts, stop_ids, stop_strings = request.prompts, request.stop_ids, request.stop_strings
    num_samples, temperature, seed = request.num_samples, request.temperature, request.seed
    greedy = temperature <= 0
    device = next(model.parameters()).device
    config = dict(
        do_sample=not greedy,
        temperature=None if greedy else temperature,
        top_k=None,
        top_p=None,
        max_new_tokens=request.max_new_tokens,
        eos_token_id=list(stop_ids),
        pad_token_id=pad_id,
        return_dict_in_generate=True,
    )
    extra = {}
    if stop_strings:
        if tokenizer is None:
            raise ValueError("stop_strings need the tokenizer")
        config["stop_strings"] = list(stop_strings)
        extra["tokenizer"] = tokenizer
    prompts_per_batch = request.prompts_per_batch
    offset = request.prompt_offset
    if offset % prompts_per_batch:
        raise ValueError(f"prompt_offset {offset} is not a multiple of the {prompts_per_batch} prompts per batch")
    seed += offset // prompts_per_batch
    out: list[Sample] = []
    stop = set(stop_ids)
    batches = range(0, len(prompts), prompts_per_batch)
    for b, s in enumerate(progress(batches, desc=request.desc, unit="batch")):
        chunk = prompts[s : s + prompts_per_batch]
        ids, mask = pad_batch(chunk, pad_id, "left")
        ids, mask = ids.to(device), mask.to(device)
        torch.manual_seed(seed + b)
        recorder = _SampledLogps()
        with recorder.hooked(model) as processors:
            gen = _generate(model, ids, mask, config, num_samples, logits_processor=processors, **extra)
        new = gen.sequences[:, ids.shape[1] :]
        logps = recorder.finish(new).cpu()
        for r in range(new.shape[0]):
            row = new[r].tolist()
            end = _stop_end(row, stop, stop_strings, tokenizer)
            out.append(
                Sample(
                    prompt_index=offset + s + r // num_samples,
                    sample_index=r % num_samples,
                    seed=seed + b,
                    token_ids=row[:end] if end else row,
                    logps=logps[r, : end if end else len(row)].tolist(),
                    finish_reason="stop" if end else "length",
                )
            )
    return out

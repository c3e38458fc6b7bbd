"""Where sampling and scoring run: transformers (``hf``, the default) or vLLM (``vllm``).

A stage names a model directory and token ids (to sample: a ``SamplingRequest``, the ids with the
sampling settings); this module picks the engine from the stage's ``backend`` param. Both return
the same things: ``Sample`` lists with the raw log-prob of each sampled token, and per-token
log-probs of given completions (never re-tokenised text).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from varreason.generation import Sample, SamplingRequest, sample
from varreason.logprobs import score_completions
from varreason.modeling import inference_device, load_model

BACKENDS = ("hf", "vllm")
_loaded: dict[str, object] = {}


def _hf_model(model_dir: str | Path):
    """The transformers model of ``model_dir`` on ``inference_device()`` (a GPU in bfloat16 when there is
    one); the last one loaded stays in memory for the next call."""
    key = str(Path(model_dir).resolve()) if Path(model_dir).exists() else str(model_dir)
    if key not in _loaded:
        release()
        device, dtype = inference_device()
        _loaded[key] = load_model(model_dir, device, dtype)[0]
    return _loaded[key]


def _check(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")


def generate(
    model_dir: str | Path, request: SamplingRequest, *, backend: str, tokenizer, engine: Mapping[str, Any] | None = None
) -> list[Sample]:
    """``request.num_samples`` samples per prompt (token ids) from the model in ``model_dir``.

    ``tokenizer`` gives transformers its pad id and finds stop strings; vLLM uses the model's own.
    ``engine``: the params' ``vllm`` settings (vLLM only).
    """
    _check(backend)
    if backend == "vllm":
        from varreason.vllm_backend import vllm_sample

        return vllm_sample(str(model_dir), request, engine=engine)
    return sample(_hf_model(model_dir), request, pad_id=tokenizer.pad_token_id, tokenizer=tokenizer)


def score(
    model_dir: str | Path,
    prompts: Sequence[Sequence[int]],
    completions: Sequence[Sequence[int]],
    *,
    backend: str,
    pad_id: int,
    batch_size: int,
    desc: str,
    batch_tokens: int | None = None,
    batches: Sequence[Sequence[int]] | None = None,
    engine: Mapping[str, Any] | None = None,
    compile_body: bool = False,
) -> list[list[float]]:
    """log p(completion_t | prompt, completion_<t) for every completion token.

    ``batch_tokens`` caps the padded tokens in one transformers batch (rows sorted by length);
    vLLM schedules its own batches. ``batches``: score only the rows of these batches of
    ``logprobs.score_batches`` (one part of a call); the other rows get []. ``compile_body``:
    transformers only, fused kernels for the decoder body (``logprobs.compiled_body``).
    """
    _check(backend)
    if backend == "vllm":
        from varreason.vllm_backend import vllm_score

        if batches is None:
            return vllm_score(str(model_dir), prompts, completions, desc=desc, engine=engine)
        rows = [i for b in batches for i in b]
        part = vllm_score(
            str(model_dir), [prompts[i] for i in rows], [completions[i] for i in rows], desc=desc, engine=engine
        )
        results: list[list[float]] = [[] for _ in prompts]
        for i, lp in zip(rows, part, strict=True):
            results[i] = lp
        return results
    return score_completions(
        _hf_model(model_dir),
        prompts,
        completions,
        pad_id,
        batch_size,
        desc=desc,
        max_batch_tokens=batch_tokens,
        batches=batches,
        compile_body=compile_body,
    )


def release() -> None:
    """Drop the cached transformers model (before loading a large other one), and its GPU memory."""
    _loaded.clear()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()

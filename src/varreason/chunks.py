"""Sampling and scoring cut into parts, each saved when done, so a restarted shard skips finished work.

A long call (a shard's K samples per question, its scoring passes, rollouts, an evaluation) runs as
consecutive parts, and each part's result goes to ``<name>-00003.parquet`` in the job's checkpoint
folder (varreason/resume.py) with an atomic write. A restarted job with the same fingerprint
reads the parts that exist and computes only the others.

The parts never change a result: sampling parts are whole generation batches whose random streams
are those of the uncut call (``SamplingRequest.prompt_offset``), and scoring parts are runs of the
uncut call's length-sorted batches (``logprobs.score_batches``). The returned values are always
read back from the part files, so an uninterrupted run and a resumed one return the same bytes.
Simplification: what a stage computes from the parts (decoding, verifying answers) is redone on
restart; it is cheap next to the model's work.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from varreason.backends import generate, score
from varreason.generation import Sample, SamplingRequest
from varreason.io import write_parquet
from varreason.resume import JobCheckpoint, heartbeat

SAMPLE_COLUMNS = ["prompt_index", "sample_index", "seed", "token_ids", "logps", "finish_reason"]


def part_files(folder: Path, name: str) -> list[Path]:
    """The completed parts of ``name`` in ``folder``, in order."""
    return sorted(folder.glob(f"{name}-[0-9][0-9][0-9][0-9][0-9].parquet"))


def run_parts(
    job: JobCheckpoint | None, name: str, n_parts: int, compute: Callable[[int], pd.DataFrame]
) -> list[pd.DataFrame]:
    """``compute(i)`` for each part not already saved in ``job``'s folder; every part, read back.

    ``job`` None: no folder, every part computed in memory (library use outside a stage).
    """
    if job is None:
        return [compute(i) for i in range(n_parts)]
    paths = [job.dir / f"{name}-{i:05d}.parquet" for i in range(n_parts)]
    done = sum(p.exists() for p in paths)
    if done:
        msg = f"{job.command} {name}: {done} of {n_parts} parts already done, resuming ({job.dir})"
        print(msg, file=sys.stderr, flush=True)
    for i, path in enumerate(paths):
        if not path.exists():
            job.ensure_dir()
            heartbeat(f"{job.command} {name} part {i + 1}/{n_parts}")
            write_parquet(compute(i), path)
    return [pd.read_parquet(p) for p in paths]


def generate_in_parts(
    model_dir: str | Path,
    request: SamplingRequest,
    *,
    backend: str,
    tokenizer,
    job: JobCheckpoint | None,
    name: str,
    chunk_prompts: int,
    engine: Mapping[str, Any] | None = None,
) -> list[Sample]:
    """``backends.generate`` in parts of about ``chunk_prompts`` prompts (whole generation batches)."""
    per_batch = request.prompts_per_batch
    size = max(1, math.ceil(chunk_prompts / per_batch)) * per_batch
    n_prompts = len(request.prompts)
    n_parts = max(1, math.ceil(n_prompts / size))

    def compute(i: int) -> pd.DataFrame:
        start = i * size
        part = dataclasses.replace(
            request,
            prompts=request.prompts[start : start + size],
            prompt_offset=request.prompt_offset + start,
            desc=f"{request.desc} part {i + 1}/{n_parts}" if n_parts > 1 else request.desc,
        )
        samples = generate(model_dir, part, backend=backend, tokenizer=tokenizer, engine=engine)
        return pd.DataFrame([dataclasses.astuple(s) for s in samples], columns=SAMPLE_COLUMNS)

    frames = run_parts(job, name, n_parts, compute)
    return [
        Sample(int(r.prompt_index), int(r.sample_index), int(r.seed), [int(t) for t in r.token_ids],
               [float(x) for x in r.logps], str(r.finish_reason))
        for df in frames
        for r in df.itertuples(index=False)
    ]  # fmt: skip


def score_in_parts(
    model_dir: str | Path,
    prompts: Sequence[Sequence[int]],
    completions: Sequence[Sequence[int]],
    *,
    backend: str,
    pad_id: int,
    batch_size: int,
    batch_tokens: int | None,
    desc: str,
    job: JobCheckpoint | None,
    name: str,
    chunk_rows: int,
    engine: Mapping[str, Any] | None = None,
    compile_body: bool = False,
) -> list[list[float]]:
    """``backends.score`` in parts: consecutive scoring batches holding about ``chunk_rows`` rows."""
    from varreason.logprobs import score_batches

    groups: list[list[list[int]]] = [[]]
    for b in score_batches(prompts, completions, batch_size, batch_tokens):
        if sum(len(x) for x in groups[-1]) >= chunk_rows:
            groups.append([])
        groups[-1].append(b)
    n_parts = len(groups)

    def compute(i: int) -> pd.DataFrame:
        rows = [r for b in groups[i] for r in b]
        if not rows:
            return pd.DataFrame({"row": pd.Series([], dtype="int64"), "logps": pd.Series([], dtype=object)})
        logps = score(
            model_dir,
            prompts,
            completions,
            backend=backend,
            pad_id=pad_id,
            batch_size=batch_size,
            desc=f"{desc} part {i + 1}/{n_parts}" if n_parts > 1 else desc,
            batch_tokens=batch_tokens,
            batches=groups[i],
            engine=engine,
            compile_body=compile_body,
        )
        return pd.DataFrame({"row": rows, "logps": [logps[r] for r in rows]})

    results: list[list[float]] = [[] for _ in prompts]
    for df in run_parts(job, name, n_parts, compute):
        for r, lp in zip(df["row"], df["logps"], strict=True):
            results[int(r)] = [float(x) for x in lp]
    return results

"""Checkpoints inside long jobs (varreason/resume.py, training.py, chunks.py), without a DAG.

A training run stopped by a real SIGUSR1 (as SLURM sends before a time limit) writes a checkpoint,
exits with EXIT_REQUEUE, and the rerun ends with the loss history and weights of an uninterrupted
run, bit for bit. Sampling and scoring in parts return exactly what one uncut call returns, and a
rerun computes only the parts that are missing. A checkpoint from other params is discarded.
"""

from __future__ import annotations

import os
import random
import signal

import pandas as pd
import pytest
import torch

import varreason.training as training
from conftest import TINY
from varreason import chunks
from varreason.backends import generate, release
from varreason.generation import SamplingRequest
from varreason.logprobs import score_completions
from varreason.modeling import build_char_tokenizer, build_tiny_qwen3, save_model_atomic
from varreason.resume import EXIT_REQUEUE, JobCheckpoint, install_stop_handlers
from varreason.training import Checkpointing, Example, checkpoints, train_sft

TRAIN = dict(pad_id=0, steps=20, batch_size=8, lr=1e-2, warmup_frac=0.2, weight_decay=0.01, seed=5, log_every=1)


def _examples() -> list[Example]:
    rng = random.Random(0)
    return [
        Example([rng.randrange(3, 30) for _ in range(4)], [rng.randrange(3, 30) for _ in range(6)] + [1])
        for _ in range(30)
    ]


def _train(checkpointing=None):
    model = build_tiny_qwen3(TINY, build_char_tokenizer(), seed=0)
    history, model = train_sft(model, _examples(), checkpointing=checkpointing, **TRAIN)
    return history, {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture
def stop_handlers():
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1)}
    install_stop_handlers()
    yield
    for s, h in saved.items():
        signal.signal(s, h)
    from varreason import resume

    resume._state["requested"] = None


def test_a_stop_signal_checkpoints_and_the_rerun_matches_an_uninterrupted_run(tmp_path, monkeypatch, stop_handlers):
    reference_history, reference = _train()
    ckpt = Checkpointing(tmp_path / "ckpt", every_steps=3, keep=2)
    real_heartbeat = training.heartbeat

    def signal_at_step_10(position: str) -> None:
        if position.endswith("step 10/20"):
            os.kill(os.getpid(), signal.SIGUSR1)  # delivered inside the step loop: deferred to its end

    monkeypatch.setattr(training, "heartbeat", signal_at_step_10)
    with pytest.raises(SystemExit) as stopped:
        _train(ckpt)
    assert stopped.value.code == EXIT_REQUEUE
    # every 3 steps (3, 6, 9) plus the one the signal asked for (10); the newest 2 are kept
    assert [p.name for p in checkpoints(ckpt.dir)] == ["step-00000009", "step-00000010"]

    from varreason import resume

    resume._state["requested"] = None
    monkeypatch.setattr(training, "heartbeat", real_heartbeat)
    history, weights = _train(ckpt)
    assert history == reference_history
    assert weights.keys() == reference.keys() and all(torch.equal(weights[k], reference[k]) for k in weights)


def test_a_stop_signal_outside_a_training_loop_exits_at_once(stop_handlers):
    with pytest.raises(SystemExit) as stopped:
        os.kill(os.getpid(), signal.SIGTERM)
    assert stopped.value.code == EXIT_REQUEUE


def test_a_checkpoint_of_other_params_is_discarded(tmp_path):
    out = tmp_path / "model"
    inputs = tmp_path / "train.parquet"
    inputs.write_bytes(b"abc")
    job = JobCheckpoint.open(out, "train_initial", {"seed": 0, "checkpoint": {"every_steps": 5}}, [inputs])
    assert not job.dir.exists()  # made only when there is work to keep
    (job.ensure_dir() / "step-00000005").mkdir()
    # checkpoint and runtime params change no result: the work is kept
    same = JobCheckpoint.open(out, "train_initial", {"seed": 0, "checkpoint": {"every_steps": 9}}, [inputs])
    assert (same.dir / "step-00000005").exists()
    other = JobCheckpoint.open(out, "train_initial", {"seed": 1, "checkpoint": {"every_steps": 5}}, [inputs])
    assert not job.dir.exists()
    (other.ensure_dir() / "step-00000005").mkdir()
    inputs.write_bytes(b"abd")  # another input: starting over too
    JobCheckpoint.open(out, "train_initial", {"seed": 1, "checkpoint": {"every_steps": 5}}, [inputs])
    assert not job.dir.exists()
    job.ensure_dir()
    job.finish()
    assert not job.dir.exists()


@pytest.fixture
def model_dir(tmp_path, tiny_model, tokenizer):
    path = tmp_path / "model"
    save_model_atomic(tiny_model, tokenizer, path)
    yield path
    release()


def test_sampling_in_parts_is_the_uncut_call_and_reuses_finished_parts(model_dir, tokenizer, tmp_path, monkeypatch):
    rng = random.Random(1)
    prompts = [[rng.randrange(3, 20) for _ in range(rng.randint(2, 6))] for _ in range(11)]
    request = SamplingRequest(
        prompts, stop_ids=[1], num_samples=3, max_new_tokens=8, temperature=1.0, seed=3, batch_size=6
    )
    whole = generate(model_dir, request, backend="hf", tokenizer=tokenizer)
    job = JobCheckpoint.open(tmp_path / "out.parquet", "sample", {"seed": 0}, [model_dir])
    kw = dict(backend="hf", tokenizer=tokenizer, job=job, name="samples", chunk_prompts=3)  # rounded up to 4
    parts = chunks.generate_in_parts(model_dir, request, **kw)
    assert parts == whole
    assert [p.name for p in chunks.part_files(job.dir, "samples")] == [f"samples-0000{i}.parquet" for i in range(3)]

    # a rerun after a kill in the last part: only that part is computed again
    chunks.part_files(job.dir, "samples")[-1].unlink()
    calls = []
    real = chunks.generate
    monkeypatch.setattr(chunks, "generate", lambda m, r, **k: calls.append(r.prompt_offset) or real(m, r, **k))
    assert chunks.generate_in_parts(model_dir, request, **kw) == whole
    assert calls == [8]


def test_scoring_in_parts_is_the_uncut_call(model_dir, tiny_model, tmp_path):
    rng = random.Random(2)
    prompts = [[rng.randrange(3, 20) for _ in range(rng.randint(1, 5))] for _ in range(13)]
    completions = [[rng.randrange(3, 20) for _ in range(rng.randint(0, 9))] for _ in range(13)]
    whole = score_completions(tiny_model, prompts, completions, 0, batch_size=3)
    job = JobCheckpoint.open(tmp_path / "scored.parquet", "score", {"seed": 0}, [model_dir])
    kw = dict(backend="hf", pad_id=0, batch_size=3, batch_tokens=None, desc="score", job=job, name="prior")
    assert chunks.score_in_parts(model_dir, prompts, completions, chunk_rows=4, **kw) == whole
    assert len(chunks.part_files(job.dir, "prior")) == 2  # 4 batches of <= 3 rows, 2 to a part of >= 4 rows
    frames = [pd.read_parquet(p) for p in chunks.part_files(job.dir, "prior")]
    assert sorted(r for f in frames for r in f["row"]) == [i for i, c in enumerate(completions) if c]

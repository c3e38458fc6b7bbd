"""Restartable jobs: where a job keeps its partial work, whether that work is this run's, stop signals.

A long job keeps its partial work in ``<output>.ckpt/`` beside its output: a training job its
checkpoints ``step-00000100/`` (accelerate's saved state), a sampling, scoring, rollout or
evaluation shard its completed parts ``<name>-00003.parquet``. ``job.json`` there records a
fingerprint of what the job computes: the command, its params (all but ``runtime`` and
``checkpoint``, which change no result) and every input file (its content, or for a file over
64 MiB its size and modification time).
A restarted job whose fingerprint differs discards the folder and starts over, so a resumed run
never mixes the work of two configurations. The folder is removed once the output is written.

Stop signals: SLURM sends the signal the profile asks for (``--signal``) minutes before a job's
time limit, and SIGTERM on preemption or ``scancel``. ``install_stop_handlers`` turns SIGUSR1 and
SIGTERM into an exit with ``EXIT_REQUEUE`` (a failure: Snakemake's ``retries`` resubmit the job,
which resumes). Inside ``stop_deferred()`` (a training loop) the exit waits for a safe point: the
loop finishes its optimiser step, writes a checkpoint and then exits (``exit_if_stop_requested``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

EXIT_REQUEUE = 75  # EX_TEMPFAIL: stopped to be run again; any non-zero status makes Snakemake retry
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
JOB_FILE = "job.json"
STATE_FILE = "trainer_state.json"  # in each training checkpoint: step, steps, loss history
HEARTBEAT_ENV = "VARREASON_HEARTBEAT"  # a file a long loop rewrites with its position (tests, monitoring)

HASH_LIMIT = 64 << 20  # input files up to this size are fingerprinted by content

_state = {"deferred": 0, "requested": None}


def checkpoint_dir(out: str | Path) -> Path:
    """Where the job writing ``out`` keeps its partial work."""
    out = Path(out)
    return out.with_name(out.name + ".ckpt")


def _on_signal(signum, frame) -> None:
    _state["requested"] = signum
    if not _state["deferred"]:
        _exit(signum)


def _exit(signum: int) -> None:
    name = signal.Signals(signum).name
    print(f"varreason: {name} received: stopping with status {EXIT_REQUEUE} to be resumed", file=sys.stderr)
    sys.stderr.flush()
    raise SystemExit(EXIT_REQUEUE)


def install_stop_handlers() -> None:
    """SIGTERM and SIGUSR1 stop the job with ``EXIT_REQUEUE`` (at a safe point inside ``stop_deferred``).

    Everything a job writes is written atomically (a temp file renamed), so stopping between two
    Python bytecodes leaves only whole files and at worst a temp file the next attempt replaces.
    """
    for s in STOP_SIGNALS:
        signal.signal(s, _on_signal)


@contextmanager
def stop_deferred() -> Iterator[None]:
    """A stop signal inside this block is remembered, not acted on: call ``exit_if_stop_requested``."""
    _state["deferred"] += 1
    try:
        yield
    finally:
        _state["deferred"] -= 1


def stop_requested() -> bool:
    return _state["requested"] is not None


def exit_if_stop_requested() -> None:
    if _state["requested"] is not None:
        _exit(_state["requested"])


def heartbeat(position: str) -> None:
    """Write ``position`` (e.g. ``step 37/120``) to the file named by $VARREASON_HEARTBEAT, if set."""
    path = os.environ.get(HEARTBEAT_ENV)
    if path:
        tmp = f"{path}.tmp"
        Path(tmp).write_text(position + "\n")
        os.replace(tmp, path)  # a reader never sees half a line


def checkpoints(folder: str | Path) -> list[Path]:
    """The complete training checkpoints in ``folder``, oldest first (a ``.tmp`` one was cut short)."""
    found = [p for p in Path(folder).glob("step-*") if p.is_dir() and not p.name.endswith(".tmp")]
    return sorted((p for p in found if (p / STATE_FILE).exists()), key=lambda p: int(p.name.split("-")[1]))


def _file_stats(paths: Iterable[str | Path]) -> list:
    stats = []
    for root in paths:
        root = Path(root)
        if not root.exists():  # a hub id: its name is what the job depends on
            stats.append([str(root), None, None])
            continue
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for p in files:
            st = p.stat()
            # a small file by its content (a stage may rewrite an input identically, e.g. a baseline's
            # set), a large one (model weights) by size and modification time
            if st.st_size <= HASH_LIMIT:
                stats.append([str(p), st.st_size, hashlib.sha256(p.read_bytes()).hexdigest()])
            else:
                stats.append([str(p), st.st_size, st.st_mtime_ns])
    return stats


def fingerprint(command: str, params: dict, inputs: Iterable[str | Path], extra: object = None) -> str:
    """A hash of what a job computes: its command, the params that change results, its inputs' stats."""
    relevant = {k: v for k, v in params.items() if k not in ("runtime", "checkpoint")}
    blob = json.dumps([command, relevant, _file_stats(inputs), extra], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class JobCheckpoint:
    """The partial work of the job that writes ``out``; ``open`` it, resume from it, ``finish`` it."""

    def __init__(self, out: str | Path, fingerprint: str, rank: int = 0) -> None:
        self.out = Path(out)
        self.dir = checkpoint_dir(out)
        self.fingerprint = fingerprint
        self.command = ""  # the job's name in messages (set by ``open``)
        self.rank = rank  # only rank 0 clears or removes the folder (the others share it)

    @classmethod
    def open(
        cls,
        out: str | Path,
        command: str,
        params: dict,
        inputs: Iterable[str | Path],
        extra: object = None,
        rank: int | None = None,
    ) -> JobCheckpoint:
        """The checkpoint folder of ``out``: kept when its fingerprint is this job's, else emptied.

        Under ``accelerate launch`` rank 0 does this; the others must wait for it (a barrier).
        """
        rank = int(os.environ.get("RANK", "0")) if rank is None else rank
        job = cls(out, fingerprint(command, params, inputs, extra), rank)
        job.command = command
        if job.rank == 0:
            job._claim(command)
        return job

    def _claim(self, command: str) -> None:
        record = self.dir / JOB_FILE
        if self.dir.exists():
            try:
                same = json.loads(record.read_text()).get("fingerprint") == self.fingerprint
            except (OSError, ValueError):
                same = False
            if same:
                return
            print(
                f"varreason {command}: {self.dir} is from a run with other inputs or params: starting over",
                file=sys.stderr,
            )
            shutil.rmtree(self.dir)

    def ensure_dir(self) -> Path:
        """The folder, made (with its fingerprint) when the first partial work is about to be saved.

        Not at ``open``: a job that stops on bad input before any work leaves nothing behind.
        """
        record = self.dir / JOB_FILE
        if self.rank == 0 and not record.exists():
            self.dir.mkdir(parents=True, exist_ok=True)
            tmp = record.with_suffix(".tmp")
            tmp.write_text(json.dumps({"command": self.command, "fingerprint": self.fingerprint}) + "\n")
            os.replace(tmp, record)
        return self.dir

    def finish(self) -> None:
        """The output is written: the partial work is no longer needed."""
        if self.rank == 0 and self.dir.exists():
            shutil.rmtree(self.dir)


def describe(out: str | Path) -> str | None:
    """What a restarted job writing ``out`` would resume from (``varreason doctor``), or None."""
    folder = checkpoint_dir(out)
    if not folder.is_dir():
        return None
    for d in reversed(checkpoints(folder)):
        try:
            state = json.loads((d / STATE_FILE).read_text())
            step, total = state["step"], state.get("steps")
        except (OSError, ValueError, KeyError):
            continue  # unreadable: the training would fail on it too; the older one is reported
        return f"the training checkpoint at step {step}" + (f" of {total}" if total else "") + f" ({folder})"
    parts: dict[str, int] = {}
    for p in folder.glob("*.parquet"):
        m = re.fullmatch(r"(.+)-\d{5}\.parquet", p.name)
        if m:
            parts[m[1]] = parts.get(m[1], 0) + 1
    if parts:
        done = ", ".join(f"{n} {name}" for name, n in sorted(parts.items()))
        return f"its completed parts ({done}) in {folder}"
    return None

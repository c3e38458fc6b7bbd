"""The worker processes that run answer checks under a wall-clock timeout (``VerifierPool``).

math-verify's own timeouts use ``signal.alarm`` (main thread only), so ``varreason.verify`` switches
them off and each math check runs here instead, in a worker process: a fresh ``python -c`` interpreter
over pipes, so it is safe from threads, from scripts without a ``__main__`` guard and from inside
spawn/forkserver workers. A check past ``timeout_s`` is counted as wrong and its worker is killed
(SIGKILL, which also stops sympy stuck in C code holding the GIL) and replaced; a worker that dies
(e.g. out of memory) is also a False. The timeout is wall-clock per check, counted from when a warm
worker receives it.

``map_shared`` runs checks on one shared, lazily started worker guarded by a lock (what
``verify_math`` uses), so it can be called from any thread. Workers exit when the parent closes their
pipe, and a watchdog thread ends an orphaned one (a check stuck in one long C call still finishes
that call first).
"""

from __future__ import annotations

import atexit
import importlib
import os
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as mp_wait
from pathlib import Path

WORKER_START_TIMEOUT_S = 120.0
# The module whose CHECKS the workers run, named rather than imported: varreason.verify imports this
# module (verify_many needs the pool), so importing it back would be a cycle. Only the worker process
# imports it, by this name, after this module is fully loaded there.
RULES = "varreason.verify"


def _worker_main(read_fd: int, write_fd: int) -> None:
    """Worker loop: warm up (imports sympy/math-verify), say ready, then answer (task_id, kind, gold, pred)."""
    inbox, outbox = Connection(read_fd, writable=False), Connection(write_fd, readable=False)
    parent = os.getppid()

    def exit_when_orphaned() -> None:  # the parent died mid-check: do not compute on for nobody
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=exit_when_orphaned, daemon=True).start()
    rules = importlib.import_module(RULES)
    rules.check_math("1", "1")  # the slow imports happen before "ready", so no check's timeout pays for them
    checks = rules.CHECKS
    outbox.send(("ready", None))
    while True:
        try:
            task = inbox.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        task_id, kind, gold, prediction = task
        try:
            ok = bool(checks[kind](gold, prediction))
        except Exception:
            ok = False
        outbox.send((task_id, ok))


_SRC_DIR = str(Path(__file__).resolve().parents[1])


class _Worker:
    """A fresh interpreter (``python -c``) talking over two pipes: unlike multiprocessing's spawn it
    never re-imports the caller's ``__main__``, so it works from scripts without a main guard, from
    threads, and from inside other pool workers."""

    def __init__(self) -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_SRC_DIR, env.get("PYTHONPATH")) if p)
        code = f"from varreason.verify_pool import _worker_main; _worker_main({to_child_r}, {from_child_w})"
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", code],
                pass_fds=(to_child_r, from_child_w),
                stdin=subprocess.DEVNULL,
                env=env,
            )
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        self.send_conn = Connection(to_child_w, readable=False)
        self.conn = Connection(from_child_r, writable=False)
        self.started = time.monotonic()
        self.ready = False
        self.task: int | None = None
        self.deadline = float("inf")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL is not ignorable
            pass
        self.send_conn.close()
        self.conn.close()

    def stop(self) -> None:
        try:
            self.send_conn.send(None)
            self.proc.wait(timeout=2)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass
        self.kill()


class VerifierPool:
    """Worker processes that run checks with a per-check timeout; a stuck worker is killed and replaced.

    Use as a context manager, or call ``close()``. ``map`` is not reentrant: guard it with a lock when
    one pool is shared between threads (``verify_math`` does).
    """

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.n_workers = workers
        self._workers: list[_Worker] = []
        self.n_killed = 0  # workers killed for a timeout or found dead (for tests and logs)

    def __enter__(self) -> VerifierPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        workers, self._workers = self._workers, []
        for w in workers:
            w.stop()

    def _replace(self, w: _Worker) -> None:
        w.kill()
        self.n_killed += 1
        self._workers[self._workers.index(w)] = _Worker()

    def map(
        self,
        kinds: Sequence[str],
        golds: Sequence[str],
        predictions: Sequence[str | None],
        timeout_s: float | None = 5.0,
    ) -> list[bool]:
        """Check every (kind, gold, prediction); a check taking longer than ``timeout_s`` is False."""
        n = len(golds)
        results = [False] * n
        if n == 0:
            return results
        limit = float("inf") if timeout_s is None else float(timeout_s)
        while len(self._workers) < min(self.n_workers, n):
            self._workers.append(_Worker())
        pending = deque(range(n))
        while pending or any(w.task is not None for w in self._workers):
            now = time.monotonic()
            for w in self._workers:
                if pending and w.ready and w.task is None and w.alive():
                    i = pending.popleft()
                    try:
                        w.send_conn.send((i, kinds[i], golds[i], predictions[i]))
                    except (OSError, ValueError):  # died while idle: retry the task on a fresh one
                        pending.appendleft(i)
                        self._replace(w)
                        continue
                    w.task, w.deadline = i, now + limit
            waits = [w.deadline for w in self._workers if w.task is not None]
            waits += [w.started + WORKER_START_TIMEOUT_S for w in self._workers if not w.ready]
            timeout = max(0.0, min(waits) - time.monotonic()) if waits else None
            ready = mp_wait([w.conn for w in self._workers], timeout=None if timeout == float("inf") else timeout)
            for w in list(self._workers):
                if w.conn not in ready:
                    continue
                try:
                    msg_id, ok = w.conn.recv()
                except (EOFError, OSError):  # worker died (e.g. killed for memory): its task is wrong
                    if not w.ready:
                        self.close()
                        raise RuntimeError("a verifier worker died while starting") from None
                    if w.task is not None:
                        results[w.task] = False
                    self._replace(w)
                    continue
                if msg_id == "ready":
                    w.ready = True
                elif msg_id == w.task:
                    results[w.task] = ok
                    w.task, w.deadline = None, float("inf")
            now = time.monotonic()
            for w in list(self._workers):
                if w.task is not None and now >= w.deadline:
                    results[w.task] = False
                    self._replace(w)
                elif not w.ready and now >= w.started + WORKER_START_TIMEOUT_S:
                    self.close()
                    raise RuntimeError(f"a verifier worker did not start within {WORKER_START_TIMEOUT_S:.0f} s")
        return results


# ------------------------------------------------------------------------------------------ shared pool

_shared_pool: VerifierPool | None = None
_shared_lock = threading.Lock()


def _close_shared_pool() -> None:
    global _shared_pool
    with _shared_lock:
        if _shared_pool is not None:
            _shared_pool.close()
            _shared_pool = None


def _forget_shared_pool_in_child() -> None:  # a forked child must not talk to the parent's worker
    global _shared_pool, _shared_lock
    _shared_pool, _shared_lock = None, threading.Lock()


atexit.register(_close_shared_pool)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_shared_pool_in_child)


def map_shared(
    kinds: Sequence[str],
    golds: Sequence[str],
    predictions: Sequence[str | None],
    timeout_s: float | None = 5.0,
) -> list[bool]:
    """``VerifierPool.map`` on one shared worker (started on first use); lock-guarded, so any thread may call it."""
    global _shared_pool
    with _shared_lock:
        if _shared_pool is None:
            _shared_pool = VerifierPool(1)
        return _shared_pool.map(kinds, golds, predictions, timeout_s)

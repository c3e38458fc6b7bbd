"""Running programs a model wrote: a sandbox per program, limits checked before they are trusted.

``run_program(program, tests, style, fn_name, limits)`` runs one program on its test inputs in a
sandbox: one result per test it ran, while ``judge(index, result)`` says go on. ``run_programs``
runs many, ``workers`` at a time; one that hangs holds a worker for at most its tests' time limits.

What a sandbox is, layer by layer (``isolation()`` finds which layers this machine allows, once, and
``describe()`` says so in words):

- Always: a session of its own (process group), a clean environment (``PATH``, ``LANG``, one BLAS
  thread; no variable of ours: no secrets), its own temporary working directory as ``HOME`` and
  ``TMPDIR``, removed afterwards; limits per process on address space, CPU time (per test), file
  size, open files and processes; at most ``output_mb`` of stdout per test; a wall-clock limit per
  test (``timeout_s``, LiveCodeBench's 6 s by default) counted from the test's start, not from the
  interpreter's.
- Namespaces (``unshare`` from util-linux; as root, or as a user where user namespaces are
  allowed): a network namespace (no network: its loopback is down), a PID namespace (the harness is
  its pid 1: a program cannot signal it, and its death kills everything in it), a mount namespace
  (the whole tree read-only, a fresh tmpfs of ``disk_mb`` on /tmp, /var/tmp, /dev/shm and
  /run/lock, a fresh /proc). Fallback where ``unshare`` fails: none of these: the program can use
  the network and write wherever its user may; ``describe()`` says so.
- As root: the program runs as a user of its own (uid ``UID_BASE`` + a number per host process and
  worker; no such user needs to exist), so it cannot write root's files or signal other sandboxes,
  and ``RLIMIT_NPROC`` (which root ignores) counts only its processes.
- cgroups (v1 or v2, where this process may create one): a process limit and a memory limit for the
  whole sandbox, not just per process; every process in it is killed afterwards.

The interpreter: the first of ``python`` (a param), this one, its base interpreter and
``/usr/bin/python3`` that the sandbox's user can start (not a venv under a home only root enters).
"""

from __future__ import annotations

import functools
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from varreason import sandbox_cgroups as CG
from varreason.progress import progress

HARNESS = Path(__file__).with_name("sandbox_harness.py")
UID_BASE = 100_000
MOUNT_WORKDIR = "/tmp/sandbox"  # inside the sandbox's own tmpfs
ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "PYTHONHASHSEED": "0",
    "PYTHONDONTWRITEBYTECODE": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
STYLES = ("stdin", "functional", "script")
_MB = 1 << 20
# an interpreter is usable when its user can import from its standard library (not only start it)
PROBE = (
    "import bisect, collections, decimal, fractions, heapq, itertools, math, socket, string\nprint(sum(range(10)))\n"
)


class SandboxError(RuntimeError):
    """The sandbox itself could not be set up (no program was run)."""


@dataclass(frozen=True)
class Limits:
    """What one sandbox may use. ``timeout_s`` is per test; the others hold for every test."""

    timeout_s: float = 6.0  # LiveCodeBench's harness
    memory_mb: int = 2048  # address space per process; also the whole sandbox's memory (cgroup)
    processes: int = 32  # processes and threads of the sandbox's user (and its cgroup)
    file_mb: int = 64  # the largest file a program may write
    disk_mb: int = 256  # its tmpfs (with namespaces)
    open_files: int = 64
    output_mb: float = 16.0  # stdout read per test; more is an error
    startup_s: float = 120.0  # for the interpreter to start and set up (a loaded machine is slow)
    python: str | None = None  # the interpreter that runs programs (None: found as the docstring says)

    @classmethod
    def from_params(cls, cfg: dict) -> Limits:
        return cls(**{k: v for k, v in cfg.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Isolation:
    """The layers this machine allows (``isolation()``)."""

    root: bool
    unshare: tuple[str, ...] = ()  # the command prefix that enters new namespaces; () where none
    cgroups: tuple[tuple[str, str], ...] = ()  # (kind, parent folder): ("pids-v1", ...), ("memory-v2", ...)
    python: str = sys.executable
    notes: tuple[str, ...] = field(default=())

    def describe(self) -> list[str]:
        ns = bool(self.unshare)
        who = "its own user (uid per worker)" if self.root else "the calling user" + (" (user namespace)" if ns else "")
        lines = [
            f"interpreter: {self.python}",
            "network: " + ("its own network namespace (no network)" if ns else "NOT isolated (no namespaces here)"),
            "files: " + ("read-only tree, its own tmpfs" if ns else "its user's permissions only (no mount namespace)"),
            "processes: " + ("its own PID namespace" if ns else "its process group only") + ", " + who,
            "cgroup limits: " + (", ".join(k for k, _ in self.cgroups) or "none (rlimits only)"),
        ]  # fmt: skip
        return lines + list(self.notes)


# --------------------------------------------------------------------------------------- isolation


def _runs(cmd: list[str], **kw) -> bool:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=60, **kw).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@functools.lru_cache(maxsize=4)
def isolation(python: str | None = None) -> Isolation:
    """Probe, once per interpreter choice: namespaces, cgroups, an interpreter the sandbox can run."""
    root = os.geteuid() == 0
    notes: list[str] = []
    unshare: tuple[str, ...] = ()
    exe = shutil.which("unshare")
    if exe:
        prefix = (exe, "--net", "--mount", "--pid", "--fork", "--kill-child")
        if not root:
            prefix = (exe, "--user", "--map-root-user", *prefix[1:])
        if _runs([*prefix, "true"]):
            unshare = prefix
        else:
            notes.append("unshare failed here: no network, mount or PID namespace")
    else:
        notes.append("no unshare command (util-linux): no namespaces")
    cgroups = tuple(CG.parents()) if root else ()
    iso = Isolation(root, unshare, cgroups, python or sys.executable, tuple(notes))
    candidates = [python] if python else [sys.executable, getattr(sys, "_base_executable", ""), "/usr/bin/python3"]
    for exe in dict.fromkeys(c for c in candidates if c):
        iso = Isolation(root, unshare, cgroups, exe, tuple(notes))
        try:
            res = run_program(PROBE, [{"input": ""}], "stdin", None, Limits(), iso=iso)
        except SandboxError:
            continue
        if res and res[0]["status"] == "ok" and res[0]["stdout"] == "45\n":
            return iso
    raise SandboxError(f"no interpreter among {candidates} runs in the sandbox ({'; '.join(iso.describe())})")


# ----------------------------------------------------------------------------------------- sessions

_counter = iter(range(1 << 62))
_counter_lock = threading.Lock()


def _ids(slot: int) -> tuple[int, int]:
    """(uid, gid) of a worker's sandbox user: distinct per host process and worker."""
    uid = UID_BASE + (os.getpid() % 100_000) * 64 + slot % 64
    return uid, uid


class _Lines:
    """Lines from a pipe, each within a deadline and a length cap (None: EOF, timeout or too long)."""

    def __init__(self, fd: int, max_bytes: int) -> None:
        self.fd, self.max_bytes, self.buf = fd, max_bytes, bytearray()

    def readline(self, deadline: float) -> str | None:
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or len(self.buf) > self.max_bytes:
                return None
            if not select.select([self.fd], [], [], left)[0]:
                continue
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                return None
            self.buf += chunk
        line, _, rest = bytes(self.buf).partition(b"\n")
        self.buf = bytearray(rest)
        return line.decode("utf-8", "replace")


def run_program(
    program: str,
    tests: Sequence[dict],
    style: str,
    fn_name: str | None,
    limits: Limits,
    *,
    slot: int = 0,
    judge: Callable[[int, dict], bool] | None = None,
    iso: Isolation | None = None,
) -> list[dict]:
    """Run ``program`` on each test's ``input`` in one sandbox, in order, while ``judge`` says go on.

    ``style``: "stdin" (the input on stdin, stdout kept), "functional" (the input is one JSON value
    per line, the arguments of ``fn_name`` or ``Solution().fn_name``; its return value kept as
    JSON), "script" (the program is run; exit 0 passes, a failed assert fails). Each result has
    ``status``: ok, exit, assertion, signal, timeout, output_limit, result_limit, or lost (the
    harness died: a program that killed it).
    """
    if style not in STYLES:
        raise ValueError(f"style {style!r}: expected one of {STYLES}")
    iso = iso or isolation(limits.python)
    uid, gid = _ids(slot) if iso.root else (None, None)
    host_dir = None if iso.unshare else tempfile.mkdtemp(prefix="varreason-sandbox-")
    if host_dir and uid is not None:
        os.chown(host_dir, uid, gid)
    with _counter_lock:
        name = f"varreason-sandbox-{os.getpid()}-{slot}-{next(_counter)}"
    try:
        cgroups = CG.make(iso.cgroups, name, limits.memory_mb * _MB, limits.processes)
    except OSError as e:
        raise SandboxError(f"cgroup set-up failed: {e}") from e
    job = {
        "limits": {"memory_bytes": limits.memory_mb * _MB, "processes": limits.processes,
                   "file_bytes": limits.file_mb * _MB, "open_files": limits.open_files},
        "cgroups": [str(d / "cgroup.procs") for d in cgroups], "mounts": bool(iso.unshare),
        "pid_namespace": bool(iso.unshare), "disk_bytes": limits.disk_mb * _MB,
        "workdir": host_dir or MOUNT_WORKDIR, "uid": uid, "gid": gid, "style": style, "fn_name": fn_name,
        "program": program, "tests": [{"input": t.get("input", "")} for t in tests],
        "timeout_s": limits.timeout_s, "max_output_bytes": int(limits.output_mb * _MB),
    }  # fmt: skip
    cmd = [*iso.unshare, iso.python, "-I", "-c", HARNESS.read_text()]
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(ENV),
        cwd="/", start_new_session=True, close_fds=True,
    )  # fmt: skip
    results: list[dict] = []
    try:
        lines = _Lines(proc.stdout.fileno(), 8 * job["max_output_bytes"] + _MB)
        proc.stdin.write((json.dumps(job) + "\n").encode())
        proc.stdin.flush()
        first = lines.readline(time.monotonic() + limits.startup_s)
        ready = json.loads(first) if first else {}
        if "ready" not in ready:
            raise SandboxError(f"the sandbox did not start: {ready.get('setup_error') or _stderr(proc)}")
        for i in range(len(tests)):
            line = lines.readline(time.monotonic() + limits.timeout_s + 30)
            if line is None:
                results.append({"index": i, "status": "lost", "stdout": "", "result": "", "stderr": ""})
                break
            results.append(json.loads(line))
            go = judge is None or judge(i, results[-1])
            try:
                proc.stdin.write(b"go\n" if go else b"stop\n")
                proc.stdin.flush()
            except BrokenPipeError:
                go = False
            if not go:
                break
    except BrokenPipeError:
        raise SandboxError(f"the sandbox did not start: {_stderr(proc)}") from None
    finally:
        _end(proc, cgroups, host_dir, uid if iso.root and not iso.unshare else None)
    return results


def _stderr(proc: subprocess.Popen) -> str:
    proc.kill()
    try:
        return proc.communicate(timeout=10)[1].decode("utf-8", "replace").strip()[-500:] or f"exit {proc.returncode}"
    except (subprocess.TimeoutExpired, ValueError, OSError):
        return "no message"


def _end(proc: subprocess.Popen, cgroups: list[Path], host_dir: str | None, uid: int | None) -> None:
    """Kill everything the sandbox started and remove what it left."""
    try:
        proc.stdin.close()  # the harness then kills what is left and reaps it (the normal end)
        proc.wait(timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        pass
    # The harness first, so that unshare reaps it (killed together, the harness is orphaned to the
    # host's init, which may never reap it); its PID namespace dies with it. Then unshare and the rest.
    try:
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    except OSError:
        children = []
    for pid in children:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    proc.kill()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        try:
            stream.close()
        except OSError:
            pass
    proc.wait()
    CG.remove(cgroups)
    if uid is not None:  # no PID namespace: whatever left the process group still runs as that uid
        subprocess.run(["kill", "-9", "-1"], user=uid, group=uid, extra_groups=[], capture_output=True, check=False)
    if host_dir:
        shutil.rmtree(host_dir, ignore_errors=True)


def run_programs(
    jobs: Sequence[dict], limits: Limits, workers: int, judge: Callable[[dict, int, dict], bool] | None = None
) -> list[list[dict]]:
    """``run_program(**job)`` for each job (keys program, tests, style, fn_name), ``workers`` at a time."""
    slots = list(range(max(1, workers)))
    free = threading.Semaphore(len(slots))
    lock = threading.Lock()
    iso = isolation(limits.python)  # probe once, before the threads
    if jobs:
        print(f"sandbox ({len(jobs)} programs, {len(slots)} at a time): " + "; ".join(iso.describe()), file=sys.stderr)

    def one(job: dict) -> list[dict]:
        free.acquire()
        with lock:
            slot = slots.pop()
        try:
            j = None if judge is None else functools.partial(judge, job)
            args = (job["program"], job["tests"], job["style"], job.get("fn_name"), limits)
            return run_program(*args, slot=slot, judge=j)
        finally:
            with lock:
                slots.append(slot)
            free.release()

    with ThreadPoolExecutor(max_workers=len(slots)) as ex:
        return list(progress(ex.map(one, jobs), desc="programs", total=len(jobs), unit="program"))

"""Stale Snakemake locks: a run killed with SIGKILL (preemption, OOM, a wall-time limit) leaves
``.snakemake/locks/*.lock`` behind, and the next ``snakemake`` refuses to start until ``--unlock``.

The Snakefile calls ``clear_stale_locks`` in the main Snakemake process (never in cluster jobs):
when no other live ``snakemake`` process works in the same directory, the locks are stale and are
removed, so re-running the same command resumes the run. Simplification: only processes on this
machine are visible (/proc); two head processes on different hosts sharing one folder are not
detected (Snakemake's own lock still stops the second while the first is alive on this host).
"""

from __future__ import annotations

import os
from pathlib import Path


def _snakemake_dirs(exclude: set[int]) -> set[str]:
    """Working directories of the live snakemake processes on this host, except ``exclude``."""
    dirs = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in exclude:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            if b"snakemake" not in cmdline:
                continue
            dirs.add(os.path.realpath(entry / "cwd"))
        except OSError:  # gone, or not ours to read
            continue
    return dirs


def _ancestors() -> set[int]:
    """This process and its parents (a `make run` or a shell running this snakemake)."""
    pids, pid = set(), os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            pid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def clear_stale_locks(workdir: str | Path = ".") -> list[str]:
    """Remove ``workdir``'s Snakemake locks if no other snakemake process works there; their names."""
    locks = sorted(Path(workdir, ".snakemake", "locks").glob("*.lock"))
    if not locks or not Path("/proc").is_dir():
        return []
    if os.path.realpath(workdir) in _snakemake_dirs(_ancestors()):
        return []  # a live run holds them
    for lock in locks:
        lock.unlink(missing_ok=True)
    return [lock.name for lock in locks]

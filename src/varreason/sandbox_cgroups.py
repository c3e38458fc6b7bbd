"""cgroups for the code sandbox (varreason/sandbox.py): where this process may make them, making
them with a process and a memory limit, and removing them with everything in them.

v1 (a pids and a memory hierarchy, each under this process's own cgroup path) where mounted,
else v2 (one folder whose ``cgroup.subtree_control`` enables pids and memory).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path


def _own() -> dict[str, str]:
    """controller -> this process's cgroup path, from /proc/self/cgroup (v1 lines and the v2 line "")."""
    out = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else [""]:
            out[c] = path
    return out


def parents() -> list[tuple[str, str]]:
    """Writable cgroup folders with a pids and a memory controller: v1 per controller, else v2."""
    root, own, found = Path("/sys/fs/cgroup"), _own(), []
    for c in ("pids", "memory"):
        if c in own and (root / c / "cgroup.procs").exists():
            found.append((f"{c}-v1", str(root / c / own[c].lstrip("/"))))
    if not found and "" in own and (root / "cgroup.controllers").exists():
        parent = root / own[""].lstrip("/")
        enabled = (parent / "cgroup.subtree_control").read_text().split() if parent.exists() else []
        found = [(f"{c}-v2", str(parent)) for c in ("pids", "memory") if c in enabled]
    usable = []
    for kind, parent in found:
        probe = Path(parent) / f"varreason-probe-{os.getpid()}"
        try:
            probe.mkdir()
            probe.rmdir()
            usable.append((kind, parent))
        except OSError:
            continue
    return usable


def make(where: Sequence[tuple[str, str]], name: str, memory_bytes: int, processes: int) -> list[Path]:
    """One cgroup per (kind, parent) of ``where`` called ``name``, with the process or memory limit; OSError if not."""
    made: list[Path] = []
    try:
        for kind, parent in where:
            d = Path(parent) / name
            d.mkdir(exist_ok=True)
            made.append(d)
            memory = str(memory_bytes)
            if kind == "pids-v1" or kind == "pids-v2":
                (d / "pids.max").write_text(str(processes))
            elif kind == "memory-v1":
                (d / "memory.limit_in_bytes").write_text(memory)
                if (d / "memory.memsw.limit_in_bytes").exists():
                    (d / "memory.memsw.limit_in_bytes").write_text(memory)
            else:
                (d / "memory.max").write_text(memory)
                if (d / "memory.swap.max").exists():
                    (d / "memory.swap.max").write_text("0")
    except OSError:
        remove(made)
        raise
    return made


def remove(dirs: Sequence[Path]) -> None:
    """Kill every process in each cgroup, then remove it (retrying while they exit)."""
    for d in dirs:
        for _ in range(200):
            try:
                pids = [int(p) for p in (d / "cgroup.procs").read_text().split()]
            except OSError:
                break
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
            try:
                d.rmdir()
                break
            except OSError:
                time.sleep(0.01)

"""What a run killed with SIGKILL (preemption, OOM, a wall-time limit) leaves behind, cleared so that
the same command resumes it:

- ``.snakemake/locks/*.lock``: the next ``snakemake`` refuses to start until ``--unlock``.
- ``.snakemake/incomplete/`` markers of outputs that exist: a job that had written its outputs when
  the head process died (e.g. during its exit) is recorded as unfinished, and the next
  ``snakemake`` stops with IncompleteFilesException. Every stage writes its outputs atomically (a
  temp name, then a rename; a model folder with its train_log.json inside) and Snakemake deletes a
  job's old outputs before it starts, so an output that exists is whole and was written by that job;
  a job with an output still missing re-runs as usual. Markers of outputs that do not exist stay.

The Snakefile calls these in the main Snakemake process (never in cluster jobs), only when no other
live ``snakemake`` process works in the same directory (then nothing is running and they are stale).
Simplification: only processes on this machine are visible (/proc); two head processes on
different hosts sharing one folder are not detected (Snakemake's own lock still stops the second
while the first is alive on this host).
"""

from __future__ import annotations

import base64
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


def _stale(workdir: str | Path) -> bool:
    """No other live snakemake works in ``workdir`` (what it left there is stale); False without /proc."""
    return Path("/proc").is_dir() and os.path.realpath(workdir) not in _snakemake_dirs(_ancestors())


def clear_stale_locks(workdir: str | Path = ".") -> list[str]:
    """Remove ``workdir``'s Snakemake locks if no other snakemake process works there; their names."""
    locks = sorted(Path(workdir, ".snakemake", "locks").glob("*.lock"))
    if not locks or not _stale(workdir):
        return []  # none, or a live run holds them
    for lock in locks:
        lock.unlink(missing_ok=True)
    return [lock.name for lock in locks]


def _marker_path(marker: Path, root: Path) -> str | None:
    """The output a marker of .snakemake/incomplete names (base64 of the path, split into folders)."""
    parts = [*marker.relative_to(root).parts]
    try:
        return base64.urlsafe_b64decode("".join(p.lstrip("@") for p in parts)).decode()
    except (ValueError, UnicodeDecodeError):
        return None  # not a marker (e.g. migration_underway)


def incomplete_outputs(workdir: str | Path = ".") -> dict[str, Path]:
    """Every output Snakemake marked incomplete in ``workdir`` -> its marker file."""
    root = Path(workdir, ".snakemake", "incomplete")
    found = {}
    for marker in sorted(root.rglob("*")) if root.is_dir() else []:
        if marker.is_file() and (path := _marker_path(marker, root)) is not None:
            found[path] = marker
    return found


def clear_written_incomplete(workdir: str | Path = ".") -> list[str]:
    """Drop the incomplete markers of outputs that exist, if no other snakemake works in ``workdir``."""
    written = {p: m for p, m in incomplete_outputs(workdir).items() if Path(workdir, p).exists()}
    if not written or not _stale(workdir):
        return []  # none, or a live run is writing them
    for marker in written.values():
        marker.unlink(missing_ok=True)
    return sorted(written)

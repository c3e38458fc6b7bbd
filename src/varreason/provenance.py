"""Where a result came from: the commit, the date, the machine and hashes of what it read.

The same seed gives the same numbers on the same machine, not across CPUs, so a claims file
names the machine (CPU model, cores) next to the commit and the params it ran with.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path


def _git(*args: str) -> str | None:
    """git in the checkout this code runs from (not the run folder): the commit of the code itself."""
    try:
        r = subprocess.run(["git", *args], capture_output=True, text=True, timeout=30, cwd=Path(__file__).parent)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what the platform module says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def params_hash(params: dict) -> str:
    """sha256 of the params as canonical JSON (sorted keys): equal params, equal hash."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()


def provenance(params: dict, files: dict[str, str | Path] | None = None, own: tuple[str, ...] = ()) -> dict:
    """Commit (and whether tracked files differ from it, not counting ``own``: the paths of the
    result being written, which a forced rerun deletes first), UTC date, machine, params hash,
    file hashes."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    if status:
        status = "\n".join(line for line in status.splitlines() if line[3:].strip() not in own)
    out = {
        "commit": _git("rev-parse", "HEAD"),
        "tracked_files_modified": None if status is None else bool(status),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "params_sha256": params_hash(params),
    }
    for name, path in (files or {}).items():
        out[f"{name}_sha256"] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    for package in ("torch", "transformers"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return out

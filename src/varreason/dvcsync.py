"""Pull DVC-versioned outputs so that Snakemake sees them as up to date.

The trap: ``dvc pull``/``dvc checkout`` restores files with fresh, arbitrary modification times and
no Snakemake metadata, so Snakemake's mtime trigger would redo restored work. After a pull whose
result DVC reports as consistent (``dvc status`` clean), ``snakemake --touch`` marks the restored
outputs up to date in DAG order and records Snakemake's metadata. The ``.snakemake_timestamp``
marker that Snakemake puts in directory outputs is in ``.dvcignore``, so DVC's hashes stay put.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def _tool(name: str) -> str:
    """The executable installed beside this Python (the project's venv), else from PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else name


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=False, text=True, capture_output=True)


def pull(remote: str | None = None, targets: list[str] | None = None, cores: int = 1) -> int:
    """``dvc pull``, check ``dvc status`` is clean, then ``snakemake --touch``; returns an exit code."""
    cmd = [_tool("dvc"), "pull", *(["--remote", remote] if remote else []), *(targets or [])]
    r = _run(cmd)
    sys.stdout.write(r.stdout)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        return r.returncode
    status = _run([_tool("dvc"), "status", "--json"])
    changed = json.loads(status.stdout or "{}") if status.returncode == 0 else None
    if changed:
        print(
            "dvc status is not clean after the pull (params or code differ from dvc.lock?): "
            f"not marking outputs up to date for Snakemake. Stages: {sorted(changed)}",
            file=sys.stderr,
        )
        return 1
    touch = subprocess.run([_tool("snakemake"), "--touch", "--cores", str(cores), "--quiet", "all"], check=False)
    if touch.returncode == 0:
        print("pulled; Snakemake sees the restored outputs as up to date")
    return touch.returncode

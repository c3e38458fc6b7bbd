"""Stale Snakemake locks are removed only when no live snakemake works in the folder."""

import subprocess
import time
from pathlib import Path

from varreason.locks import clear_stale_locks


def _locks(path):
    d = path / ".snakemake" / "locks"
    d.mkdir(parents=True)
    for name in ("0.input.lock", "0.output.lock"):
        (d / name).write_text("data/x.parquet\n")
    return d


def test_stale_locks_are_removed(tmp_path):
    d = _locks(tmp_path)
    assert clear_stale_locks(tmp_path) == ["0.input.lock", "0.output.lock"]
    assert list(d.iterdir()) == []
    assert clear_stale_locks(tmp_path) == []  # nothing left to do


def test_locks_of_a_live_run_are_kept(tmp_path):
    d = _locks(tmp_path)
    # a process named snakemake working in that folder
    live = subprocess.Popen(["bash", "-c", "exec -a snakemake sleep 30"], cwd=tmp_path)
    cmdline = Path(f"/proc/{live.pid}/cmdline")
    deadline = time.time() + 10
    while not cmdline.read_bytes().startswith(b"snakemake") and time.time() < deadline:
        time.sleep(0.01)  # until bash has exec'd the renamed sleep
    try:
        assert clear_stale_locks(tmp_path) == []
        assert len(list(d.iterdir())) == 2
    finally:
        live.kill()
        live.wait()
    assert clear_stale_locks(tmp_path) == ["0.input.lock", "0.output.lock"]

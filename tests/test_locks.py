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


def _marker(root: Path, output: str, max_len: int = 255) -> Path:
    """An incomplete marker as Snakemake writes it: base64 of the path, split into folders of max_len."""
    import base64

    b64 = base64.urlsafe_b64encode(output.encode()).decode()
    parts = [b64[i : i + max_len - 1] for i in range(0, len(b64), max_len - 1)]
    path = root / ".snakemake" / "incomplete" / Path(*(["@" + p for p in parts[:-1]] + [parts[-1]]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    return path


def test_incomplete_markers_of_written_outputs_are_dropped(tmp_path):
    from varreason.locks import clear_written_incomplete, incomplete_outputs

    (tmp_path / "data" / "eval").mkdir(parents=True)
    (tmp_path / "data" / "eval" / "rft.parquet").write_bytes(b"whole")  # written atomically before the kill
    long_name = "data/eval/" + "/".join(["x" * 100] * 3) + ".parquet"  # a marker split into folders
    (tmp_path / long_name).parent.mkdir(parents=True)
    (tmp_path / long_name).write_bytes(b"whole")
    written = [_marker(tmp_path, "data/eval/rft.parquet"), _marker(tmp_path, long_name)]
    missing = _marker(tmp_path, "data/traces/scored/shard-0.parquet")  # its job never wrote it
    assert set(incomplete_outputs(tmp_path)) == {
        "data/eval/rft.parquet",
        long_name,
        "data/traces/scored/shard-0.parquet",
    }
    assert clear_written_incomplete(tmp_path) == sorted(["data/eval/rft.parquet", long_name])
    assert not any(m.exists() for m in written) and missing.exists()
    assert clear_written_incomplete(tmp_path) == []


def test_incomplete_markers_of_a_live_run_are_kept(tmp_path):
    from varreason.locks import clear_written_incomplete

    (tmp_path / "out.parquet").write_bytes(b"being written by a live job")
    marker = _marker(tmp_path, "out.parquet")
    live = subprocess.Popen(["bash", "-c", "exec -a snakemake sleep 30"], cwd=tmp_path)
    cmdline = Path(f"/proc/{live.pid}/cmdline")
    deadline = time.time() + 10
    while not cmdline.read_bytes().startswith(b"snakemake") and time.time() < deadline:
        time.sleep(0.01)
    try:
        assert clear_written_incomplete(tmp_path) == [] and marker.exists()
    finally:
        live.kill()
        live.wait()

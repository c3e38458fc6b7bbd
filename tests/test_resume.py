"""Kill anywhere, run again: SIGKILL the smoke DAG during sampling, during scoring and during final
training; the same command then completes, redoes only what was unfinished, and every output is
byte-identical to an uninterrupted run with the same seed. A different seed changes the outputs.

Training restarts deterministically (no mid-training checkpoint: a killed training job reruns from
its start with the same seed and data, which on CPU gives the same weights bit for bit).
"""

import filecmp
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", "2"]
# (a log a job opens when it starts, the output that job writes when it finishes)
KILL_POINTS = [
    ("logs/sample_posterior-0.log", "data/traces/posterior/shard-0.parquet"),
    ("logs/score-0.log", "data/traces/scored/shard-0.parquet"),
    ("logs/train_final-gml.log", "data/models/final-gml"),
]


def _outputs(work: Path) -> dict[str, float]:
    """Every output file under data/ and metrics/, with its modification time."""
    return {
        str(p.relative_to(work)): p.stat().st_mtime
        for top in ("data", "metrics")
        if (work / top).exists()
        for p in (work / top).rglob("*")
        if p.is_file()
    }


def _run_until(work: Path, marker: str, output: str) -> None:
    """Start the DAG, SIGKILL its whole process group once ``marker`` exists (the job is running)."""
    p = subprocess.Popen(
        [*SNAKEMAKE, "--directory", str(work)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        while not (work / marker).exists():
            assert p.poll() is None, f"the run ended before {marker} appeared"
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    assert not (work / output).exists(), f"killed too late: {output} was already written"


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    work = tmp_path_factory.mktemp("killed")
    shutil.copy(REPO / "workflow" / "presets" / "smoke.yaml", work / "params.yaml")
    kept = []
    for marker, output in KILL_POINTS:
        _run_until(work, marker, output)
        kept.append(_outputs(work))  # what was finished before this kill
    r = subprocess.run([*SNAKEMAKE, "--directory", str(work)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return work, kept, r.stderr


def test_the_same_command_resumes_after_each_kill(killed_and_resumed):
    work, _, log = killed_and_resumed
    assert "removed stale Snakemake locks" in log
    assert (work / "metrics" / "summary.json").exists()
    assert not list(work.rglob("*.tmp")), "a killed writer left a temp file behind"


def test_only_unfinished_work_is_redone(killed_and_resumed):
    work, kept, _ = killed_and_resumed
    now = _outputs(work)
    finished_before_last_kill = kept[-1]
    assert finished_before_last_kill, "nothing had finished before the last kill"
    for path, mtime in finished_before_last_kill.items():
        assert now[path] == mtime, f"{path} was redone"


def test_outputs_are_byte_identical_to_an_uninterrupted_run(killed_and_resumed, smoke_run):
    work, _, _ = killed_and_resumed
    ref, _ = smoke_run
    resumed, uninterrupted = sorted(_outputs(work)), sorted(_outputs(ref))
    assert resumed == uninterrupted
    different = [p for p in resumed if not filecmp.cmp(work / p, ref / p, shallow=False)]
    assert different == []


def test_another_seed_changes_the_traces_and_metrics(smoke_run, tmp_path):
    ref, _ = smoke_run
    shutil.copy(REPO / "workflow" / "presets" / "smoke.yaml", tmp_path / "params.yaml")
    targets = ["data/traces/posterior/shard-0.parquet", "metrics/eval/initial.json"]
    r = subprocess.run(
        [*SNAKEMAKE, "--directory", str(tmp_path), *targets, "--config", "seed=1"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr[-3000:]
    for t in targets:
        assert not filecmp.cmp(tmp_path / t, ref / t, shallow=False), t

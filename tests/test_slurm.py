"""The smoke DAG through `snakemake --profile <shipped SLURM profile>` on a real one-node SLURM cluster.

The cluster is brought up by scripts/local-slurm.sh (Debian's slurm-wlm and munge; root needed) and
stopped by PID at the end. One job is cancelled with `scancel` while it runs: the profile's retries
resubmit it and the workflow completes with the same outputs as a local run.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO

pytestmark = pytest.mark.slurm
SCRIPT = REPO / "scripts" / "local-slurm.sh"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the local SLURM cluster needs root (daemons, /etc/slurm/slurm.conf)")
    # .ci/run names this folder too, to stop the daemons even if the run dies
    state = Path(os.environ.get("VARREASON_SLURM_DIR") or tmp_path_factory.mktemp("slurm-state"))
    subprocess.run(["bash", str(SCRIPT), "install"], check=True)
    subprocess.run(["bash", str(SCRIPT), "start", str(state)], check=True)
    yield state
    subprocess.run(["bash", str(SCRIPT), "stop", str(state)], check=True)
    for pidfile in ("slurmctld.pid", "slurmd.pid", "munged.pid"):
        assert not (state / pidfile).exists()
    # the config goes with the cluster: a dangling one makes every Snakemake start wait ~10 s
    conf = Path("/etc/slurm/slurm.conf")
    assert not conf.exists() or "varreason" not in conf.read_text()


def local_profile(dest: Path) -> Path:
    """The shipped profile, pointed at the local partition (no accounting there, so squeue polls)."""
    profile = yaml.safe_load((REPO / "workflow" / "profiles" / "slurm" / "config.yaml").read_text())
    profile["default-resources"].update(slurm_partition="debug", mem_mb=1000, runtime=30)
    profile.update(
        {
            "slurm-status-command": "squeue",
            "slurm-no-account": True,
            "slurm-init-seconds-before-status-checks": 1,
            "seconds-between-status-checks": 2,
            "latency-wait": 5,
        }
    )
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.yaml").write_text(yaml.safe_dump(profile))
    return dest


def wait_for(pattern: str, log: Path, proc: subprocess.Popen, timeout: float = 300) -> re.Match:
    end = time.time() + timeout
    while time.time() < end:
        m = re.search(pattern, log.read_text())
        if m:
            return m
        assert proc.poll() is None, log.read_text()[-3000:]
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {pattern!r}")


def job_state(jobid: str) -> str:
    return subprocess.run(["squeue", "-h", "-j", jobid, "-o", "%T"], capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    work = tmp_path_factory.mktemp("slurm-run")
    shutil.copy(REPO / "workflow" / "presets" / "smoke.yaml", work / "params.yaml")
    profile = local_profile(work / "profile")
    log = work / "snakemake.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [BIN / "snakemake", "-s", REPO / "Snakefile", "--profile", profile],
            cwd=work,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        # cancel pi_0's training job once it runs: the profile's retries must resubmit it
        first = wait_for(r"submitted with SLURM jobid (\d+) \(log: [^)]*rule_train_initial", log, proc)
        jobid = first.group(1)
        end = time.time() + 120
        while job_state(jobid) != "RUNNING" and time.time() < end:
            time.sleep(0.5)
        time.sleep(3)
        subprocess.run(["scancel", jobid], check=True)
        rc = proc.wait(timeout=1500)
    text = log.read_text()
    assert rc == 0, text[-4000:]
    return work, text, jobid


def test_jobs_went_through_slurm(slurm_run):
    _, text, _ = slurm_run
    submitted = re.findall(r"submitted with SLURM jobid (\d+) \(log: [^)]*rule_(\w+)/", text)
    rules = {rule for _, rule in submitted}
    assert {
        "train_initial",
        "train_posterior",
        "sample_posterior",
        "score",
        "rollout",
        "train_final",
        "evaluate",
    } <= rules
    # light rules ran on the submitting host
    assert not rules & {"prepare", "weights", "build_final", "report"}


def test_cancelled_job_is_retried(slurm_run):
    _, text, cancelled = slurm_run
    train_jobs = re.findall(r"submitted with SLURM jobid (\d+) \(log: [^)]*rule_train_initial/", text)
    assert train_jobs[0] == cancelled and len(train_jobs) >= 2, train_jobs


def test_outputs_equal_a_local_run(slurm_run, smoke_run):
    cluster_dir, _, _ = slurm_run
    local_dir, _ = smoke_run
    parquets = sorted(p.relative_to(local_dir) for p in (local_dir / "data").rglob("*.parquet"))
    assert len(parquets) > 20
    for rel in parquets:
        pd.testing.assert_frame_equal(
            pd.read_parquet(local_dir / rel), pd.read_parquet(cluster_dir / rel), obj=str(rel)
        )
    local_summary = json.loads((local_dir / "metrics" / "summary.json").read_text())
    assert json.loads((cluster_dir / "metrics" / "summary.json").read_text()) == local_summary


def test_doctor_sees_the_controller_and_a_stale_config(cluster, tmp_path, monkeypatch):
    from varreason import doctor
    from varreason.params import load_params

    params = load_params(REPO / "params.yaml")
    slurm = {c.name: c for c in doctor.check_environment(tmp_path, params)}["slurm"]
    assert slurm.status == "ok" and "the controller answers" in slurm.detail
    # a config naming a controller nobody runs (another port): the doctor says what it costs
    stale = tmp_path / "slurm.conf"
    stale.write_text(Path("/etc/slurm/slurm.conf").read_text() + "SlurmctldPort=6899\n")
    monkeypatch.setenv("SLURM_CONF", str(stale))
    slurm = {c.name: c for c in doctor.check_environment(tmp_path, params)}["slurm"]
    assert slurm.status == "warning" and "is down" in slurm.detail and "local-slurm.sh stop" in slurm.fix

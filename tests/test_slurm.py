"""The smoke DAG through `snakemake --profile <shipped SLURM profile>` on a real one-node SLURM cluster.

The cluster is brought up by scripts/local-slurm.sh (Debian's slurm-wlm and munge; root needed) and
stopped by PID at the end. One job is cancelled with `scancel` while it runs: the profile's retries
resubmit it and the workflow completes with the same outputs as a local run. A training job whose work
is longer than its 2-minute time limit gets the profile's warning signal, saves a checkpoint, exits
with status 75, is resubmitted and resumes, until it is done; its outputs equal a local run's.
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


# The time-limit test: pi_0's training made longer than its time limit by a sleep after every step
# (src/varreason/training.py), so that it needs several attempts on any machine.
STEP_SLEEP_S = 2.25  # x 60 steps (smoke preset) = 135 s of sleep alone, more than the 2-minute limit
TIME_LIMIT_MINUTES = 2
# SLURM checks time limits and warning times every 30 s and sends the warning once at most lead + 30 s
# are left (sbatch(1): "up to 60 seconds earlier than specified"): with a 20-second lead, 70-100 s
# into a 2-minute job, and the limit itself is enforced at least 30 s after it. An attempt thus
# trains for at least 70 s less its start (~10 s here): 2 or 3 attempts, the retries leave room.
TIME_LIMIT_SIGNAL = "--signal=TERM@20"
TIME_LIMIT_RETRIES = 8
STOP_MESSAGE = "varreason: SIGTERM received: stopping with status 75 to be resumed"


def _output_files(run: Path) -> list[Path]:
    """Every file under ``run``'s data/ and metrics/, relative to ``run``."""
    found = (p for d in ("data", "metrics") if (run / d).exists() for p in (run / d).rglob("*"))
    return sorted(p.relative_to(run) for p in found if p.is_file())


def _snakemake(args, work: Path, log: Path, env=None, timeout: float = 600) -> str:
    with log.open("w") as out:
        rc = subprocess.run(
            [BIN / "snakemake", "-s", REPO / "Snakefile", *args],
            cwd=work,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            timeout=timeout,
        ).returncode
    text = log.read_text()
    assert rc == 0, text[-4000:]
    return text


@pytest.fixture(scope="module")
def time_limit_run(cluster, tmp_path_factory):
    """pi_0's training through the profile, 2-minute limit: (work, Snakemake log, each attempt's rule log,
    the checkpoints seen)."""
    work = tmp_path_factory.mktemp("slurm-time-limit")
    params = yaml.safe_load((REPO / "workflow" / "presets" / "smoke.yaml").read_text())
    # no periodic checkpoints: every checkpoint is one written on the signal (no result depends on these)
    params["checkpoint"].update(every_steps=None, every_minutes=None)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    profile_dir = local_profile(work / "profile")
    profile = yaml.safe_load((profile_dir / "config.yaml").read_text())
    assert "--signal=TERM@" in profile["default-resources"]["slurm_extra"]  # the shipped profile's
    profile["retries"] = TIME_LIMIT_RETRIES
    profile["set-resources"] = {
        "train_initial": {"runtime": TIME_LIMIT_MINUTES, "slurm_extra": f"'{TIME_LIMIT_SIGNAL}'"}
    }
    (profile_dir / "config.yaml").write_text(yaml.safe_dump(profile))
    rule_log = work / "logs" / "train_initial.log"
    ckpt = work / "data" / "models" / "initial.ckpt"
    log = work / "snakemake.log"
    # sbatch --export=ALL (the plugin's): the submitting environment reaches the job
    env = {**os.environ, "VARREASON_TEST_STEP_SLEEP_S": str(STEP_SLEEP_S)}
    attempts, checkpoints = [], set()  # each attempt's rule log (--log truncates it), checkpoints seen
    start = time.time()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [BIN / "snakemake", "-s", REPO / "Snakefile", "--profile", profile_dir, "data/models/initial"],
            cwd=work,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
        while proc.poll() is None:
            assert time.time() - start < 900, "the time-limited training did not finish in 15 minutes"
            text = rule_log.read_text() if rule_log.exists() else ""
            if text:
                if not attempts or len(text) < len(attempts[-1]):  # a new attempt truncated the log
                    attempts.append(text)
                else:
                    attempts[-1] = text
            if ckpt.exists():
                checkpoints |= {p.name for p in ckpt.glob("step-*") if not p.name.endswith(".tmp")}
            time.sleep(0.25)
    text = log.read_text()
    assert proc.returncode == 0, text[-4000:]
    attempts[-1] = rule_log.read_text()
    print(f"\ntime-limited training: {time.time() - start:.0f} s; checkpoints written: {sorted(checkpoints)}")
    return work, text, attempts, checkpoints


def test_time_limited_training_resumes_across_resubmissions(time_limit_run, tmp_path):
    work, text, attempts, checkpoints = time_limit_run
    jobs = re.findall(r"submitted with SLURM jobid (\d+) \(log: [^)]*rule_train_initial/", text)
    assert len(jobs) >= 2, text[-4000:]  # the work is longer than the limit: at least one resubmission
    assert len(jobs) <= TIME_LIMIT_RETRIES + 1
    asked = [line for line in text.splitlines() if f"slurm_extra={TIME_LIMIT_SIGNAL}," in line]
    assert len(asked) == len(jobs) and all(f" runtime={TIME_LIMIT_MINUTES}," in line for line in asked), asked
    slurm_logs = work / ".snakemake" / "slurm_logs" / "rule_train_initial"
    for jobid in jobs[:-1]:
        # the profile's warning signal reached the job step (not the time limit), and the stage exited 75
        job_log = (slurm_logs / f"{jobid}.log").read_text()
        assert re.search(rf"\*\*\* STEP {jobid}\.0 ON \S+ CANCELLED AT \S+ \*\*\*", job_log), job_log[-3000:]
        assert "returned non-zero exit status 75" in job_log, job_log[-3000:]
    assert text.count("Error in rule train_initial") == len(jobs) - 1
    # the stop message of a stopped attempt (the next attempt's --log truncates it: seen while running)
    assert any(STOP_MESSAGE in a for a in attempts), [a[-500:] for a in attempts]
    # the last attempt resumed from the newest checkpoint, which a stopped attempt wrote on the signal
    final = attempts[-1]
    resumed = [int(s) for s in re.findall(r"resuming from step (\d+) of 60", final)]
    assert len(resumed) == 1 and 0 < resumed[0] < 60, final[-2000:]
    steps = sorted(int(c.split("-")[1]) for c in checkpoints)
    assert steps and steps[-1] == resumed[0], (steps, resumed)
    assert not (work / "data" / "models" / "initial.ckpt").exists()
    starts = [re.findall(r"resuming from step (\d+)", a) for a in attempts]
    print(
        f"time-limited training: {len(jobs)} attempts (SLURM jobs {jobs}); checkpoints at steps {steps}; "
        f"the attempts seen started from steps {[int(s[0]) if s else 0 for s in starts]}"
    )

    # the same outputs as a local run of the same params without the sleep
    local = tmp_path / "local"
    local.mkdir()
    shutil.copy(work / "params.yaml", local / "params.yaml")
    _snakemake(["--cores", "1", "data/models/initial"], local, tmp_path / "local.log")
    produced = _output_files(local)
    assert any(p.name == "model.safetensors" for p in produced), produced
    assert _output_files(work) == produced
    for rel in produced:
        assert (work / rel).read_bytes() == (local / rel).read_bytes(), rel

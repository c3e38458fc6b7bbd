"""Kill anywhere, run again: SIGKILL in the middle of every kind of long job, then the same command.

Kill points: each training stage kind (pi_0, q, the final model, a baseline, the posterior update),
a sampling shard, a scoring shard and an evaluation. Where each kill lands is drawn at random
(seeded) within the job's work: a training step, or a part of a shard. The job reports its
position through $VARREASON_HEARTBEAT; the test kills the whole process group once the job has
reached the drawn position, runs the same command again and reads from the log where it resumed.

Checks: every output under data/ and metrics/ is byte-identical to the smoke run without any kill
(which also ran with other checkpoint params: none of them changes a result), no partial work
(``*.ckpt``) or temp file is left, and the work redone after each kill is at most one checkpoint
interval of training or one part of a shard; the test prints what it measured.
"""

from __future__ import annotations

import filecmp
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO

pytestmark = pytest.mark.slow
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", "1"]
EVERY_STEPS = 5
CHUNK_PROMPTS = 16
CHUNK_ROWS = 64
STEP_SLEEP_S = "0.05"  # a tiny model's step is milliseconds: give the poller time to see each one
# (what to build, its log, the job's name in the heartbeat, kind)
KILL_POINTS = [
    ("data/models/initial", "logs/train_initial.log", "train_initial", "step"),
    ("data/models/posterior", "logs/train_posterior.log", "train_posterior", "step"),
    ("data/traces/posterior/shard-0.parquet", "logs/sample_posterior-0.log", "sample_posterior[0] samples", "part"),
    ("data/traces/scored/shard-0.parquet", "logs/score-0.log", "score[shard-0.parquet] prior", "part"),
    ("data/models/final-gml", "logs/train_final-gml.log", "train_final[final-gml]", "step"),
    ("data/models/baseline-sft", "logs/baselines-sft.log", "train_final[baseline-sft]", "step"),
    ("data/eval/initial.parquet", "logs/evaluate-initial.log", "evaluate[initial] sampled", "part"),
]
POSITION = re.compile(r"^(?P<job>.+) (?:step|part) (?P<at>\d+)/(?P<of>\d+)$")


def _outputs(work: Path) -> list[str]:
    found = [p for top in ("data", "metrics") if (work / top).exists() for p in (work / top).rglob("*")]
    return sorted(str(p.relative_to(work)) for p in found)


def _position(heartbeat: Path, job: str) -> tuple[int, int] | None:
    """(position, total) of ``job`` in the heartbeat file, if that job wrote it last."""
    try:
        m = POSITION.match(heartbeat.read_text().strip())
    except FileNotFoundError:
        return None
    if m is None or m["job"] != job:
        return None
    return int(m["at"]), int(m["of"])


def _kill_at(
    cmd: list[str], env: dict, heartbeat: Path, job: str, fraction: float, output: Path, cwd: Path | None = None
) -> tuple[int, int]:
    """Run ``cmd``; SIGKILL its process group once ``job`` reached ``fraction`` of its work (at least
    position 2, so some work was done). Returns the (position, total) it had reached."""
    heartbeat.unlink(missing_ok=True)
    p = subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            pos = _position(heartbeat, job)
            if pos and pos[0] >= max(2, math.ceil(fraction * pos[1])):
                break
            assert p.poll() is None, f"the run ended before {job} reached {fraction:.0%} of its work"
            time.sleep(0.01)
        else:
            raise AssertionError(f"{job}: no progress within 900 s")
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    assert not output.exists(), f"killed too late: {output} was already written"
    return _position(heartbeat, job)


def _redone(log: str, kind: str, reached: tuple[int, int], name: str) -> str:
    """What the rerun did again, from its log; asserts it is at most one interval / one part."""
    at, total = reached
    if kind == "step":
        m = re.search(r"resuming from step (\d+) of (\d+)", log)
        assert m, f"{name}: the rerun did not resume from a checkpoint:\n{log[-2000:]}"
        resumed = int(m[1])
        assert at - EVERY_STEPS <= resumed <= at, (name, at, resumed)
        return f"killed after step {at}/{total}, resumed from step {resumed}: {at - resumed} steps redone"
    m = re.search(re.escape(name) + r": (\d+) of (\d+) parts already done", log)
    assert m, f"{name}: the rerun did not reuse any part:\n{log[-2000:]}"
    kept = int(m[1])
    assert at - 1 <= kept <= at, (name, at, kept)  # only the part in progress was lost
    return f"killed in part {at}/{total}, {kept} parts kept: at most 1 part redone"


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    work = tmp_path_factory.mktemp("killed")
    params = yaml.safe_load((REPO / "workflow" / "presets" / "smoke.yaml").read_text())
    params["checkpoint"].update(
        every_steps=EVERY_STEPS, every_minutes=None, chunk_prompts=CHUNK_PROMPTS, chunk_rows=CHUNK_ROWS
    )
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    heartbeat = work / "heartbeat"
    env = {**os.environ, "VARREASON_HEARTBEAT": str(heartbeat), "VARREASON_TEST_STEP_SLEEP_S": STEP_SLEEP_S}
    rng = random.Random(16)
    report = []
    for target, log, job, kind in KILL_POINTS:
        cmd = [*SNAKEMAKE, "--directory", str(work), target]
        reached = _kill_at(cmd, env, heartbeat, job, rng.uniform(0.2, 0.9), work / target)
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        report.append((job, _redone((work / log).read_text(), kind, reached, job)))

    full = subprocess.run([*SNAKEMAKE, "--directory", str(work)], env=env, capture_output=True, text=True)
    assert full.returncode == 0, full.stdout[-3000:] + full.stderr[-3000:]

    # the posterior update (claims run only): the stage itself, killed and run again, beside data/
    def update(out: str) -> list[str]:
        cli = [sys.executable, "-m", "varreason.cli", "--params", "params.yaml", "--log", f"logs/{out}.log"]
        return cli + ["update-posterior", "--weights", "data/traces/weighted-gml.parquet", "--out", f"round2/{out}"]

    q2, ref_q2 = work / "round2" / "resumed", work / "round2" / "uninterrupted"
    reached = _kill_at(update("resumed"), env, heartbeat, "update_posterior", rng.uniform(0.2, 0.9), q2, cwd=work)
    r = subprocess.run(update("resumed"), env=env, cwd=work, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    log = (work / "logs" / "resumed.log").read_text()
    report.append(("update_posterior", _redone(log, "step", reached, "update_posterior")))
    r = subprocess.run(update("uninterrupted"), cwd=work, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    print(f"\nwork redone after each kill (a checkpoint every {EVERY_STEPS} steps; parts of {CHUNK_PROMPTS} questions)")
    for job, what in report:
        print(f"  {job:32s} {what}")
    return work, q2, ref_q2


def test_every_output_is_byte_identical_to_an_uninterrupted_run(killed_and_resumed, smoke_run):
    work, _, _ = killed_and_resumed
    ref, _ = smoke_run
    resumed = _outputs(work)
    assert resumed == _outputs(ref)
    different = [p for p in resumed if (ref / p).is_file() and not filecmp.cmp(work / p, ref / p, shallow=False)]
    assert different == []


def test_the_posterior_update_resumes_to_the_same_weights(killed_and_resumed):
    _, q2, ref_q2 = killed_and_resumed
    files = sorted(p.name for p in q2.iterdir())
    assert files == sorted(p.name for p in ref_q2.iterdir()) and "model.safetensors" in files
    assert all(filecmp.cmp(q2 / f, ref_q2 / f, shallow=False) for f in files)


def test_no_partial_work_is_left(killed_and_resumed):
    work, _, _ = killed_and_resumed
    assert not list(work.rglob("*.ckpt")), "a finished job left its checkpoints"
    assert not [p for p in work.rglob("*.tmp") if "heartbeat" not in p.name], "a killed writer left a temp file"


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

"""dvc.yaml never drifts from the Snakefile; `dvc repro` re-runs exactly what a param change touches;
trace corpora and models round-trip through a DVC remote; Snakemake does not redo restored work."""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from varreason.dvcyaml import CMD_PREFIX

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
ENV = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def sh(*cmd, cwd, check=True) -> subprocess.CompletedProcess:
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, env=ENV, capture_output=True, text=True)
    if check:
        assert r.returncode == 0, f"{cmd}: {r.stdout[-2000:]}{r.stderr[-2000:]}"
    return r


def rule_of(stage: str) -> str:
    return stage.split("-", 1)[0]  # rule names have no '-'; stages of wildcard rules append values


def dvc_edges(cwd) -> set[tuple[str, str]]:
    dot = sh(BIN / "dvc", "dag", "--dot", cwd=cwd).stdout
    return {(a, b) for a, b in re.findall(r'"([^"]+)" -> "([^"]+)"', dot)}


def rulegraph_edges(cwd) -> set[tuple[str, str]]:
    dot = sh(BIN / "snakemake", "--rulegraph", cwd=cwd).stdout
    names = dict(re.findall(r'^\s*(\d+)\[label = "([^"]+)"', dot, flags=re.M))
    edges = {(names[a], names[b]) for a, b in re.findall(r"^\s*(\d+) -> (\d+)", dot, flags=re.M)}
    return {e for e in edges if "all" not in e}


def ran_and_skipped(output: str) -> tuple[set[str], set[str]]:
    ran = set(re.findall(r"Running stage '([^']+)'", output))
    skipped = set(re.findall(r"Stage '([^']+)' didn't change, skipping", output))
    return ran, skipped


def downstream(stages: set[str], edges: set[tuple[str, str]]) -> set[str]:
    out, todo = set(stages), list(stages)
    while todo:
        s = todo.pop()
        for a, b in edges:
            if a == s and b not in out:
                out.add(b)
                todo.append(b)
    return out


def set_param(cwd: Path, section: str, key: str, value) -> None:
    path = cwd / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params[section][key] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def checksums(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".snakemake_timestamp" and p.name != ".gitignore"
    }


def test_dvc_yaml_is_generated_from_the_snakefile():
    r = sh(sys.executable, "-m", "varreason.cli", "dvc-yaml", "--check", cwd=REPO, check=False)
    assert r.returncode == 0, r.stdout[-3000:]
    # the stage graph, collapsed to rules, is Snakemake's rule graph
    collapsed = {(rule_of(a), rule_of(b)) for a, b in dvc_edges(REPO)}
    assert collapsed == rulegraph_edges(REPO)
    # every stage's command is the command Snakemake prints for one of its jobs, and vice versa
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    printed = sh(BIN / "snakemake", "-n", "-p", "--forceall", "--cores", "2", cwd=REPO).stdout
    commands = set(re.findall(r"^Shell command: (.+)$", printed, flags=re.M)) - {"None"}  # rule all
    # DVC's command is Snakemake's, after the prefix that puts the project's venv on PATH
    assert all(s["cmd"].startswith(CMD_PREFIX) for s in stages.values())
    assert {s["cmd"].removeprefix(CMD_PREFIX) for s in stages.values()} == commands
    for name, stage in stages.items():
        # DVC never deletes an output before the command runs (stages write atomically)
        for out in stage.get("outs", []) + stage.get("metrics", []):
            assert next(iter(out.values()))["persist"], (name, out)
        assert any(d.startswith("src/varreason/stages/") for d in stage["deps"]), name
        assert "src/varreason/cli.py" not in stage["deps"], name


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A git + DVC repository holding this project, with the smoke preset as params.yaml, after `dvc repro`."""
    work = tmp_path_factory.mktemp("dvcrepo")
    files = sh("git", "ls-files", "-co", "--exclude-standard", cwd=REPO).stdout.split()
    for f in files:
        if (REPO / f).is_file() and f != "dvc.lock":
            (work / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, work / f)
    shutil.copy(REPO / "workflow" / "presets" / "smoke.yaml", work / "params.yaml")
    sh("git", "init", "-q", cwd=work)
    sh("git", "config", "user.email", "ci@example.invalid", cwd=work)
    sh("git", "config", "user.name", "ci", cwd=work)
    sh(BIN / "dvc", "repro", cwd=work)
    sh("git", "add", "-A", cwd=work)
    sh("git", "commit", "-qm", "run 1", cwd=work)
    return work


def test_sampling_param_reruns_sampling_and_downstream_only(repo):
    set_param(repo, "sampling", "temperature", 1.0)
    status = json.loads(sh(BIN / "dvc", "status", "--json", cwd=repo).stdout)
    assert set(status) == {"sample_posterior-0", "sample_posterior-1"}
    r = sh(BIN / "dvc", "repro", cwd=repo)
    ran, skipped = ran_and_skipped(r.stdout + r.stderr)
    assert ran == downstream({"sample_posterior-0", "sample_posterior-1"}, dvc_edges(repo))
    assert {"prepare", "train_initial", "train_posterior", "sample_initial-0", "baselines-rft"} <= skipped
    # the change is visible to DVC's diff tools
    params_diff = sh(BIN / "dvc", "params", "diff", "--json", cwd=repo).stdout
    change = json.loads(params_diff)["params.yaml"]["sampling.temperature"]
    assert (change["old"], change["new"]) == (0.7, 1.0)
    metrics_diff = json.loads(sh(BIN / "dvc", "metrics", "diff", "--json", cwd=repo).stdout)
    weight_changes = metrics_diff["metrics/weights-gml.json"]
    assert any(v.get("diff") not in (0, None) for v in weight_changes.values()), metrics_diff
    sh("git", "commit", "-qam", "run 2: posterior temperature 1.0", cwd=repo)


def test_evaluation_param_reruns_evaluation_and_report_only(repo):
    set_param(repo, "evaluate", "temperature", 1.0)
    r = sh(BIN / "dvc", "repro", cwd=repo)
    ran, _ = ran_and_skipped(r.stdout + r.stderr)
    assert ran == {s for s in ran if rule_of(s) in ("evaluate", "report")}
    assert {f"evaluate-{m}" for m in ("initial", "sft", "rft", "vr-gml", "vr-acc")} | {"report"} == ran
    sh("git", "commit", "-qam", "run 3: evaluation temperature 1.0", cwd=repo)


def test_push_then_pull_restores_everything_and_snakemake_redoes_nothing(repo, tmp_path):
    sh(BIN / "dvc", "remote", "add", "-d", "local", tmp_path / "remote", cwd=repo)
    sh(BIN / "dvc", "push", cwd=repo)
    before = checksums(repo / "data")
    assert any(k.startswith("traces/posterior/") for k in before) and any(k.startswith("models/") for k in before)
    shutil.rmtree(repo / "data")
    sh("git", "checkout", "--", "data/README.md", cwd=repo)  # a fresh clone has the tracked files
    shutil.rmtree(repo / ".dvc" / "cache")
    shutil.rmtree(repo / ".snakemake", ignore_errors=True)  # a new machine has no Snakemake metadata
    sh(sys.executable, "-m", "varreason.cli", "pull", cwd=repo)
    assert checksums(repo / "data") == before
    assert json.loads(sh(BIN / "dvc", "status", "--json", cwd=repo).stdout) == {}
    dry = sh(BIN / "snakemake", "-n", "--cores", "2", cwd=repo)
    assert "Nothing to be done" in dry.stdout + dry.stderr


# the rules whose stages sample or score through varreason.backends (and so can run vLLM)
BACKEND_RULES = {"sample_posterior", "sample_initial", "score", "rollout", "evaluate", "evaluate_benchmark"}


def _edited(path: Path, edit):
    """Apply ``edit`` to the file's text; returns a function that puts the file back."""
    before = path.read_text()
    path.write_text(edit(before))
    return lambda: path.write_text(before)


def test_editing_the_vllm_backend_dirties_exactly_the_stages_that_can_run_it(repo):
    assert json.loads(sh(BIN / "dvc", "status", "--json", cwd=repo).stdout) == {}
    restore = _edited(repo / "src/varreason/vllm_backend.py", lambda t: t + "\n# an edit\n")
    try:
        status = json.loads(sh(BIN / "dvc", "status", "--json", cwd=repo).stdout)
    finally:
        restore()
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    assert set(status) == {s for s in stages if rule_of(s) in BACKEND_RULES}
    assert {rule_of(s) for s in status} >= {"sample_posterior", "score", "rollout", "sample_initial", "evaluate"}


def test_editing_a_help_string_dirties_no_stage(repo):
    assert json.loads(sh(BIN / "dvc", "status", "--json", cwd=repo).stdout) == {}
    restores = [
        _edited(repo / "src/varreason/pipeline.py", lambda t: t.replace("write the train/test splits", "write splits")),
        _edited(
            repo / "src/varreason/cli.py", lambda t: t.replace("params file (validated", "the params file (validated")
        ),
    ]
    try:
        assert json.loads(sh(BIN / "dvc", "status", "--json", cwd=repo).stdout) == {}
    finally:
        for restore in restores:
            restore()


def test_dvc_repro_runs_without_the_venv_activated_and_loses_nothing_without_it(repo):
    """`.venv/bin/dvc repro` from a shell whose PATH lacks the venv: the stage finds the project's venv.
    With no venv and no varreason on PATH the command fails, and DVC has deleted nothing first."""
    env = {**ENV, "PATH": "/usr/bin:/bin"}
    train = repo / "data/prepared/train.parquet"
    before = hashlib.sha256(train.read_bytes()).hexdigest()
    (repo / ".venv").symlink_to(BIN.parent, target_is_directory=True)
    try:
        r = subprocess.run(
            [BIN / "dvc", "repro", "--force", "--single-item", "prepare"],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        assert "Running stage 'prepare'" in r.stdout + r.stderr
        assert hashlib.sha256(train.read_bytes()).hexdigest() == before  # same params, same split
    finally:
        (repo / ".venv").unlink()
    r = subprocess.run(
        [BIN / "dvc", "repro", "--force", "--single-item", "prepare"], cwd=repo, env=env, capture_output=True, text=True
    )
    assert r.returncode != 0
    assert "varreason" in r.stdout + r.stderr and "not found" in r.stdout + r.stderr
    assert hashlib.sha256(train.read_bytes()).hexdigest() == before
    assert (repo / "data/prepared/test.parquet").exists()

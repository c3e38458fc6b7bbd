"""The DAG's shape: every stage is a rule, lint is clean, every rule logs, heavy rules declare resources."""

import os
import re
import subprocess
import sys

import pytest

from conftest import REPO
from varreason.pipeline import STAGES as TABLE

# the rules of the default DAG: one per stage of the table, named with _ for - (evaluate-benchmark has
# jobs only when evaluate.benchmarks names some; update-posterior and claims-report are claims rules)
# import-model's rule exists only when model.pretrained is a .gguf file (test_a_gguf_model_adds_its_import)
CLAIMS_ONLY = {"update-posterior", "claims-report", "evaluate-benchmark"}
STAGES = [c.name.replace("-", "_") for c in TABLE if c.name not in CLAIMS_ONLY | {"import-model"}]
# a rule that runs a model declares threads, resources and a benchmark file (update-posterior's rule is
# the claims run's claims_update_posterior)
HEAVY = {("claims_" if c.name == "update-posterior" else "") + c.name.replace("-", "_") for c in TABLE if c.runs_model}


def _snakemake(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "snakemake", *args], capture_output=True, text=True, cwd=cwd)


def _rule_blocks() -> dict[str, str]:
    blocks = {}
    for path in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        text = path.read_text()
        for m in re.finditer(r"^rule (\w+):\n(.*?)(?=^\S|\Z)", text, flags=re.S | re.M):
            blocks[m.group(1)] = m.group(2)
    return blocks


def test_dry_run_lists_every_stage():
    r = _snakemake("-n", "--cores", "2")
    assert r.returncode == 0, r.stderr
    table = r.stdout + r.stderr
    for stage in STAGES:
        assert re.search(rf"^{stage}\s+\d+$", table, flags=re.M), f"{stage} missing from the dry run"


def test_a_gguf_model_adds_its_import(tmp_path):
    params = (REPO / "params.yaml").read_text().replace("  pretrained: null ", "  pretrained: base.gguf ")
    (tmp_path / "params.yaml").write_text(params)
    (tmp_path / "base.gguf").write_bytes(b"")
    r = _snakemake(
        "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "-n", "-p", "--cores", "2", cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    assert re.search(r"^import_model\s+1$", out, flags=re.M)
    assert "import-model --out data/models/base" in out and "logs/import_model.log" in out
    # pi_0 (and q, when it starts from the base model) start from the imported checkpoint
    assert re.search(r"train-initial --train \S+ --base data/models/base --out data/models/initial", out)


def test_lint_reports_only_environment_advice():
    r = _snakemake("--lint")
    findings = re.findall(r"^\s+\* (.+)$", r.stdout + r.stderr, flags=re.M)
    assert findings, "lint printed nothing: did it run?"
    assert set(findings) == {"Specify a conda environment or container for each rule.:"}


def test_every_rule_logs_and_heavy_rules_declare_resources():
    blocks = _rule_blocks()
    assert set(STAGES) <= set(blocks)
    for name, body in blocks.items():
        assert "\n    log:" in body, f"rule {name} has no log:"
    for name in HEAVY:
        body = blocks[name]
        for key in ("benchmark:", "resources:", "threads:"):
            assert f"\n    {key}" in body, f"heavy rule {name} lacks {key}"


@pytest.mark.parametrize("gpus", [0, 1])
def test_gpu_resource_only_where_configured(tmp_path, gpus):
    params = (REPO / "params.yaml").read_text().replace("  gpus: 0 ", f"  gpus: {gpus} ")
    (tmp_path / "params.yaml").write_text(params)
    r = _snakemake(
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(tmp_path),
        "-n",
        "--cores",
        "2",
        "-p",
        "--until",
        "train_initial",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert ("gpu=1" in r.stdout) == (gpus == 1)


def _params_with(tmp_path, **runtime) -> None:
    params = (REPO / "params.yaml").read_text()
    for key, value in runtime.items():
        params, n = re.subn(rf"^  {key}: \S+ ", f"  {key}: {value} ", params, count=1, flags=re.M)
        assert n == 1, key
    (tmp_path / "params.yaml").write_text(params)


TRAINING_RULES = {"train_initial", "train_posterior", "train_final", "baselines"}  # the rules with launch=TRAIN


def test_several_nodes_show_in_the_training_jobs_only(tmp_path):
    """runtime.nodes: 2 (docs/slurm.md#several-nodes): the training jobs ask for 2 nodes and run srun, one
    launcher per node, 2 x 2 processes; sampling, scoring, rollouts and evaluation stay on one node."""
    _params_with(tmp_path, gpus=2, nodes=2, accelerate_config="workflow/accelerate/fsdp.yaml")
    r = _snakemake(
        "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "-n", "-p", "--cores", "2", cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr
    job = r"^rule (\w+):\n(?:(?!^rule ).)*?^    resources: ([^\n]*)\nShell command: ([^\n]*)"  # one job's block
    jobs = re.findall(job, r.stdout, re.M | re.S)
    assert TRAINING_RULES <= {name for name, _, _ in jobs}
    # the transformers backend computes on one GPU, so its jobs ask for one (launch.inference_resources)
    assert {"sample_initial", "score", "evaluate"} <= {name for name, res, _ in jobs if "gpu=1" in res.split(", ")}
    for name, resources, shell in jobs:
        res = set(resources.split(", "))
        if name in TRAINING_RULES:
            assert {"nodes=2", "tasks=2", "mpi=srun", "gres=gpu:2", "cpus_per_task=2"} <= res, (name, resources)
            assert not any(x.startswith("gpu=") for x in res), (name, resources)  # --gpus would be a job total
            assert shell.startswith("srun --nodes=2 --ntasks=2 --ntasks-per-node=1 "), (name, shell)
            assert " python -m varreason.launch --config_file workflow/accelerate/fsdp.yaml --num_processes 4 " in shell
            assert " -m varreason.cli --params params.yaml" in shell
        elif "gpu=1" in res:  # the other model-running jobs
            assert not any(x.startswith(("nodes=", "tasks=", "mpi=")) for x in res), (name, resources)
            assert shell.startswith("varreason "), (name, shell)


def test_several_nodes_without_an_accelerate_config_are_refused(tmp_path):
    _params_with(tmp_path, nodes=2)
    r = _snakemake("-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "-n", "--cores", "2", cwd=tmp_path)
    assert r.returncode != 0
    assert "runtime.nodes is 2, but runtime.accelerate_config is not set" in r.stdout + r.stderr


def test_install_profile_makes_a_bare_profile_name_work(tmp_path):
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path)}
    r = subprocess.run(
        [sys.executable, "-m", "varreason.cli", "install-profile", "--partition", "gpu-a100", "--account", "lab"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    installed = (tmp_path / "snakemake" / "slurm" / "config.yaml").read_text()
    assert "  slurm_partition: gpu-a100" in installed and "  slurm_account: lab" in installed
    dry = subprocess.run(
        [sys.executable, "-m", "snakemake", "--profile", "slurm", "-n"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "slurm_partition=gpu-a100" in dry.stdout and "slurm_account=lab" in dry.stdout

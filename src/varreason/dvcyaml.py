"""Write ``dvc.yaml`` from the Snakemake DAG, so that the two can never drift apart.

The Snakefile is the source of truth. Each Snakemake job becomes one DVC stage: a rule without
wildcards keeps its name (``train_initial``); a job of a wildcard rule is named after the rule and
its wildcard values, like its log file (``sample_posterior-0``, ``weights-gml``). A stage's
``cmd`` is the job's shell command exactly as Snakemake formats it; ``deps`` are the job's inputs
plus the source files of the code its stage runs (the stage function's module and every varreason
module it imports, at the top or inside a function; not the CLI, which only dispatches); ``params``
are the keys the rule declares (``reads=``, from the stage table in varreason/pipeline.py);
``outs`` are the job's outputs, all marked ``persist`` so that DVC never deletes them before the
command runs (every stage writes its outputs atomically, so a failed command leaves the old ones
whole), with JSON metrics declared as ``metrics``.

Simplification: the stage list follows ``sampling.shards``; after changing it, run
``varreason dvc-yaml`` again (CI fails on a stale file with ``--check``).
"""

from __future__ import annotations

import ast
import difflib
import shlex
from importlib import resources
from pathlib import Path

import yaml

from varreason import paths as P
from varreason.command import Command
from varreason.pipeline import COMMANDS

HEADER = (
    "# Generated from the Snakefile by `varreason dvc-yaml`: do not edit by hand.\n"
    "# CI runs `varreason dvc-yaml --check` and fails when this file and the Snakefile differ.\n"
)
# dvc.yaml's top-level plots: the data files the report rule writes, and how to draw them (the report
# page, reports/report.html, draws the same data: varreason/report_page.py). Per-bin x: the bin's centre.
_VR = [f"vr-{e}" for e in P.ESTIMATORS]
_PAGE_PLOTS = {
    "log_weights": {"x": "log_weight", "y": list(P.ESTIMATORS), "title": "Raw log-weights: traces per bin"},
    "ess": {"x": "ess_over_k", "y": list(P.ESTIMATORS), "title": "ESS/K per question: questions per bin"},
    "accuracy_by_bin": {
        "x": "difficulty",
        "y": list(P.EVAL_MODELS),
        "title": "Greedy accuracy by difficulty bin (pi_0's own accuracy)",
    },
    "implicit_weights": {
        "x": "difficulty",
        "y": ["uniform", "rft", "grpo", *_VR],
        "title": "Share of training weight by difficulty bin",
    },
    "loss": {"x": "step", "y": ["initial", "posterior", *list(P.EVAL_MODELS)[1:]], "title": "Smoothed training loss"},
}
PLOTS = [
    {
        P.ACCURACY_PLOT: {
            "x": "greedy_acc",
            "y": "model",
            "template": "bar_horizontal",
            "title": "Held-out greedy accuracy",
        }
    },
    {P.IWAE_PLOT: {"x": "k", "y": "iwae_bound", "title": "IWAE bound estimate vs K"}},
    *({P.PAGE_PLOT_DATA.format(plot=name): spec} for name, spec in _PAGE_PLOTS.items()),
]
# DVC runs a stage's command in a plain shell: this puts the project's venv (when it has one) on
# PATH first, as the Snakefile's shell prefix does for Snakemake, so `.venv/bin/dvc repro` works from
# a shell where the venv is not activated. DVC sets DVC_ROOT to the repository root.
CMD_PREFIX = 'PATH="$DVC_ROOT/.venv/bin:$PATH" '


def module_file(module: str) -> Path:
    """The source file of a varreason module (``varreason.stages.sample`` -> .../stages/sample.py)."""
    parts = module.split(".")[1:]
    base = resources.files("varreason").joinpath(*parts)
    return Path(str(base / "__init__.py")) if Path(str(base)).is_dir() else Path(str(base.with_suffix(".py")))


def imports(module: str) -> set[str]:
    """The varreason modules ``module`` imports, at the top or inside a function (a lazy import runs too)."""
    tree = ast.parse(module_file(module).read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "varreason":
            found |= {f"varreason.{a.name}" for a in node.names}  # from varreason import paths
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("varreason."):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("varreason.")}
    return {m for m in found if m != "varreason"}


def closure(module: str) -> set[str]:
    """``module`` and every varreason module it can import, transitively."""
    todo, seen = [module], set()
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(imports(m) - seen)
    return seen


def source_files(stage: Command, src_root: str = "src") -> list[str]:
    """The package files a stage runs: its function's module and everything that imports."""
    package_parent = module_file("varreason").parent.parent
    return sorted(f"{src_root}/{module_file(m).relative_to(package_parent).as_posix()}" for m in closure(stage.module))


def stage_of_command(cmd: str) -> Command:
    """The stage a rule's shell command runs, parsed by the CLI's own parser (the words after
    ``varreason`` or ``-m varreason.cli``: its global options, the subcommand and its options)."""
    from varreason.cli import build_parser

    words = shlex.split(cmd)
    start = next(i for i, w in enumerate(words) if w in ("varreason", "varreason.cli")) + 1
    return COMMANDS[build_parser().parse_args(words[start:]).command]


def snakemake_jobs(snakefile: Path, workdir: Path) -> list:
    """Every job of the full DAG (as if nothing had been run), from Snakemake's own API."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, ResourceSettings

    with SnakemakeApi(OutputSettings()) as api:
        workflow_api = api.workflow(
            resource_settings=ResourceSettings(cores=1024),  # so {threads} is the rule's own value
            snakefile=snakefile.resolve(),
            workdir=workdir.resolve(),
            config_settings=ConfigSettings(),
        )
        workflow_api.dag(dag_settings=DAGSettings(forceall=True))
        # Snakemake 9 has no public API that lists a DAG's jobs with their shell commands (the DAG
        # API only prints: printdag, printrulegraph, summary); this does what printdag() does first.
        workflow = workflow_api._workflow
        workflow._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True)
        workflow._build_dag()
        jobs = [j for j in workflow.dag.jobs if j.rule.shellcmd]
        return [
            {
                "rule": j.rule.name,
                "wildcards": dict(j.wildcards),
                "cmd": j.shellcmd,
                "input": [str(f) for f in j.input],
                "output": [str(f) for f in j.output],
                "params": list(j.params.get("reads", {})),
            }
            for j in jobs
        ]


def stage_name(job: dict) -> str:
    return "-".join([job["rule"], *job["wildcards"].values()])


def build_dvc_yaml(snakefile: Path, workdir: Path) -> dict:
    stages = {}
    for job in sorted(snakemake_jobs(snakefile, workdir), key=stage_name):
        outs, metrics = [], []
        for out in job["output"]:
            if out.startswith("metrics/") and out.endswith(".json"):
                metrics.append({out: {"cache": False, "persist": True}})
            elif out.startswith("reports/"):
                outs.append({out: {"cache": False, "persist": True}})
            else:
                outs.append({out: {"persist": True}})
        stage = {
            "cmd": CMD_PREFIX + job["cmd"],
            "deps": [*job["input"], *source_files(stage_of_command(job["cmd"]))],
        }
        if job["params"]:
            stage["params"] = job["params"]
        if outs:
            stage["outs"] = outs
        if metrics:
            stage["metrics"] = metrics
        stages[stage_name(job)] = stage
    return {"stages": stages, "plots": PLOTS}


def render(doc: dict) -> str:
    return HEADER + yaml.safe_dump(doc, sort_keys=False, width=1000)


def write_or_check(snakefile: str | Path, out: str | Path, check: bool = False) -> int:
    """Write ``out`` from the DAG of ``snakefile`` (run in its folder); with ``check``, compare instead
    and return 1 (printing a diff) on drift."""
    snakefile, out = Path(snakefile), Path(out)
    text = render(build_dvc_yaml(snakefile, snakefile.resolve().parent))
    if not check:
        out.write_text(text)
        return 0
    current = out.read_text() if out.exists() else ""
    if current == text:
        print(f"{out}: up to date with the Snakefile")
        return 0
    diff = difflib.unified_diff(current.splitlines(), text.splitlines(), str(out), "from the Snakefile", lineterm="")
    print("\n".join(diff))
    print(f"{out} has drifted from the Snakefile: run `varreason dvc-yaml` and commit the result")
    return 1

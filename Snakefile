"""varreason: the variational-reasoning pipeline as one DAG.

Run it with `snakemake --cores 2` (or `make run`); on a cluster with `snakemake --profile
workflow/profiles/slurm`. Every rule calls one `varreason` subcommand; paths come from
src/varreason/paths.py, parameters from params.yaml (validated against the schema first).
"""

import os
import shlex
import sys

from snakemake.utils import min_version, validate

from varreason import paths as P
from varreason.launch import inference_resources, train_launch, train_resources
from varreason.locks import clear_stale_locks, clear_written_incomplete
from varreason.params import load_params_file, overrides_between, validate_params
from varreason.pipeline import COMMANDS
from varreason.slurm_signals import forward_sigterm_to_jobs

min_version("9.0")

# Rules call the `varreason` console script installed beside the Python running Snakemake, so
# `.venv/bin/snakemake` works without activating the venv. Strict bash mode as by default.
shell.prefix(f"set -euo pipefail; export PATH={shlex.quote(os.path.dirname(sys.executable))}:$PATH; ")


configfile: "params.yaml"


# Inside a SLURM job, SIGTERM (the time-limit warning, preemption) reaches the stage even where SLURM
# signals only the step's first process (src/varreason/slurm_signals.py).
forward_sigterm_to_jobs()


# A run killed by SIGKILL leaves Snakemake's locks behind; with no other snakemake working in this
# folder they are stale, and removing them lets the same command resume (src/varreason/locks.py); so are
# the incomplete markers of outputs a killed job had already written (atomically).
if workflow.is_main_process:
    _stale = clear_stale_locks(".")
    if _stale:
        print(f"varreason: removed stale Snakemake locks of a killed run: {', '.join(_stale)}", file=sys.stderr)
    _written = clear_written_incomplete(".")
    if _written:
        print(f"varreason: a killed run had written these whole (atomic writes): {', '.join(_written)}", file=sys.stderr)


# Our validator first: one line per problem, naming the dotted key. Then Snakemake's own, same schema.
validate_params(config, "params.yaml (with any --config overrides)")
validate(config, "workflow/schemas/params.schema.yaml")

SHARDS = list(range(config["sampling"]["shards"]))
BENCHMARKS = list(config["evaluate"]["benchmarks"])  # name -> source; every model is evaluated on each
T = config["runtime"]["threads"]
GPU = inference_resources(config)  # sampling, scoring, rollouts, evaluation: the GPUs their engine uses
# Training rules run under `accelerate launch` when runtime.accelerate_config names a config
# (workflow/accelerate/: FSDP, DeepSpeed ZeRO-3, 2 CPU processes), one process per GPU; with
# runtime.nodes > 1 on every node of the SLURM allocation, and they ask SLURM for those nodes
# (src/varreason/launch.py, docs/slurm.md#several-nodes).
TRAIN = train_launch(config["runtime"])
TRAIN_RESOURCES = train_resources(config["runtime"])


include: "workflow/rules/common.smk"
include: "workflow/rules/prepare.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/sample.smk"
include: "workflow/rules/weights.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/claims_common.smk"
include: "workflow/rules/claims.smk"


# Light rules run on the submitting host, not as cluster jobs.
localrules:
    all,
    prepare,
    weights,
    build_final,
    report,
    claims,
    claims_prepare,
    claims_weights,
    claims_build,
    claims_report,


rule all:
    input:
        P.SUMMARY,
        P.REPORT_PAGE,
        expand(P.BENCH_METRICS, model=list(P.EVAL_MODELS), benchmark=BENCHMARKS),
    default_target: True


# `snakemake claims`: the arms of the pre-registered plan (params claims.plan) on its seeds, and the report
rule claims:
    input:
        VC.REPORT_JSON,
        VC.REPORT_PAGE,


onsuccess:
    if os.path.exists(P.REPORT_PAGE):
        print(f"\n{open(P.REPORT_PAGE).read()}")

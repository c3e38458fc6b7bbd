"""The stage table: what each pipeline stage is, written down once.

Per stage: the function that runs it, its CLI options (input and output paths default to their place
in the DAG, ``paths.py``), the params keys it reads and the columns of the tables it writes. From
this table come the ``varreason`` CLI (parser and dispatch), the rules' rerun keys (``reads=`` in
``workflow/rules/common.smk``), the ``params`` and code deps of each dvc.yaml stage, ``varreason
doctor``'s checks of a run folder, and the stage tables in docs/pipeline.md and data/README.md
(tests compare them). Tools (``traces``, ``doctor``, ...) are commands of the same CLI that run no
pipeline stage.

Nothing here imports a stage module: the table is read by commands that must start fast (no torch).
"""

from __future__ import annotations

from pathlib import Path

from varreason import columns as C
from varreason import paths as P
from varreason.command import Command, Opt


def _renamed(pattern: str, **options: str) -> Opt:
    """A path default whose wildcards come from options of other names ({baseline} from --kind)."""
    shown = pattern
    for wildcard, option in options.items():
        shown = shown.replace("{" + wildcard + "}", "{" + option + "}")
    return Opt(default=lambda o, _: pattern.format(**{w: o[opt] for w, opt in options.items()}), show=shown)


def _base(opts: dict, params: dict) -> str | None:
    return P.base_model(params["model"]["pretrained"])


BASE = Opt(
    default=_base,
    help="the checkpoint to start from",
    show=f"{P.BASE_MODEL} for a .gguf model.pretrained, else model.pretrained (null: the tiny model)",
)


def _shard_samples(opts: dict, params: dict) -> list[str]:
    # only RFT and GRPO learn from pi_0's own samples
    return P.shards(P.INITIAL_SAMPLES, params["sampling"]["shards"]) if opts["kind"] in ("rft", "grpo") else []


SHARD = Opt(default=0, type=int, help="the shard of the training questions (0 .. sampling.shards-1)")
ESTIMATOR = Opt(choices=P.ESTIMATORS, required=True, help="the estimator of pi(Y|x,z)")
MODEL_NAME = Opt(required=True, help="model name, e.g. initial, sft, rft, vr-gml, vr-acc")
TRACE_READS = ("task.templates", "task.verifier")

STAGES = [
    Command(
        "prepare",
        "varreason.stages.prepare:prepare",
        "write the train/test splits",
        {"train_out": P.PREPARED_TRAIN, "test_out": P.PREPARED_TEST},
        reads=("seed", "task"),
        writes=("train_out", "test_out"),
    ),
    Command(
        "import-model",
        "varreason.stages.import_model:import_model",
        "convert the GGUF file model.pretrained into a Hugging Face checkpoint directory",
        {"out": P.BASE_MODEL},
        reads=("model.pretrained",),
        writes=("out",),
    ),
    Command(
        "train-initial",
        "varreason.stages.train:train_initial",
        "train pi_0 by SFT on the original data",
        {"train": P.PREPARED_TRAIN, "base": BASE, "out": P.INITIAL_MODEL},
        reads=("seed", "model", "train_initial", "task.templates"),
        writes=("out",),
        runs_model=True,
    ),
    Command(
        "train-posterior",
        "varreason.stages.train:train_posterior",
        "train the posterior q(z|x,y') on hinted prompts",
        {"train": P.PREPARED_TRAIN, "initial": P.INITIAL_MODEL, "base": BASE, "out": P.POSTERIOR_MODEL},
        reads=("seed", "model", "train_posterior", "task.templates"),
        writes=("out",),
        runs_model=True,
    ),
    Command(
        "sample-posterior",
        "varreason.stages.sample:sample_posterior",
        "sample K traces per question of one shard from q",
        {"train": P.PREPARED_TRAIN, "posterior": P.POSTERIOR_MODEL, "shard": SHARD, "out": P.POSTERIOR_TRACES},
        reads=("seed", "sampling", "vllm", *TRACE_READS),
        writes=("out",),
        runs_model=True,
    ),
    Command(
        "score",
        "varreason.stages.score:score",
        "per-token log-probs of traces under pi_0 and q, and of the answer under pi_0",
        {
            "traces": P.POSTERIOR_TRACES,
            "initial": P.INITIAL_MODEL,
            "posterior": P.POSTERIOR_MODEL,
            "shard": SHARD,
            "out": P.SCORED_TRACES,
        },
        reads=("scoring", "sampling.backend", "vllm", "task.templates"),
        writes=("out",),
        runs_model=True,
    ),
    Command(
        "rollout",
        "varreason.stages.score:rollout",
        "sample M answers per trace from pi_0 and verify them (Acc estimator)",
        {"traces": P.POSTERIOR_TRACES, "initial": P.INITIAL_MODEL, "shard": SHARD, "out": P.ROLLOUTS},
        reads=("seed", "rollout", "sampling.backend", "vllm", *TRACE_READS),
        writes=("out",),
        runs_model=True,
    ),
    Command(
        "sample-initial",
        "varreason.stages.sample:sample_initial",
        "sample K verified completions per question of one shard from pi_0 (RFT)",
        {"train": P.PREPARED_TRAIN, "initial": P.INITIAL_MODEL, "shard": SHARD, "out": P.INITIAL_SAMPLES},
        reads=(
            "seed",
            "sampling.backend",
            "vllm",
            "sampling.k",
            "sampling.initial_temperature",
            "sampling.max_trace_tokens",
            "sampling.batch_size",
            "sampling.shards",
            "rollout.max_answer_tokens",
            *TRACE_READS,
        ),
        writes=("out",),
        runs_model=True,
    ),
    Command(
        "weights",
        "varreason.stages.weights:weights",
        "importance weights, ESS and IWAE bound for one estimator",
        {
            "estimator": ESTIMATOR,
            "scored": Opt(nargs="+", required=True, help="the scored shards"),
            "rollouts": Opt(nargs="*", default=[], help="the rollout shards (Acc only)"),
            "out": P.WEIGHTED_TRACES,
            "metrics": P.WEIGHT_METRICS,
        },
        reads=("scoring", "sampling.k", "select.max_thinking_tokens"),
        writes=("out", "metrics"),
    ),
    Command(
        "build-final",
        "varreason.stages.build:build_final",
        "select traces by weight and write the final training set",
        {
            "estimator": ESTIMATOR,
            "weights": P.WEIGHTED_TRACES,
            "train": P.PREPARED_TRAIN,
            "initial": P.INITIAL_MODEL,
            "out": P.FINAL_SET,
            "metrics": P.FINAL_SET_METRICS,
        },
        reads=("seed", "select", "task"),
        writes=("out", "metrics"),
    ),
    Command(
        "train-final",
        "varreason.stages.train:train_final",
        "weighted SFT of pi_0 on the final training set",
        {"estimator": ESTIMATOR, "final_set": P.FINAL_SET, "initial": P.INITIAL_MODEL, "out": P.FINAL_MODEL},
        reads=("seed", "train_final", "model.trainable_layers"),
        writes=("out",),
        runs_model=True,
    ),
    Command(
        "baselines",
        "varreason.stages.baselines:baselines",
        "build a baseline's set (sft: original data; rft: pi_0's correct samples; oracle, grpo) and train it",
        {
            "kind": Opt(choices=P.BASELINE_KINDS, required=True, help="the baseline"),
            "train": P.PREPARED_TRAIN,
            "samples": Opt(
                default=_shard_samples,
                nargs="*",
                help="pi_0's sample shards",
                show="every shard of pi_0's samples, for rft",
            ),
            "initial": P.INITIAL_MODEL,
            "set_out": _renamed(P.BASELINE_SET, baseline="kind"),
            "set_metrics": _renamed(P.BASELINE_SET_METRICS, baseline="kind"),
            "out": _renamed(P.BASELINE_MODEL, baseline="kind"),
        },
        reads=("seed", "train_final", "model.trainable_layers", "select.mix_original", "baselines", "task"),
        writes=("set_out", "set_metrics", "out"),
        runs_model=True,
    ),
    Command(
        "evaluate",
        "varreason.stages.evaluate:evaluate",
        "greedy accuracy, avg@n and pass@k of one model on the test split",
        {
            "name": MODEL_NAME,
            "model": Opt(help="the checkpoint (default: the run's model of --name)"),
            "test": P.PREPARED_TEST,
            "out": _renamed(P.EVAL_SAMPLES, model="name"),
            "metrics": _renamed(P.EVAL_METRICS, model="name"),
        },
        reads=("seed", "evaluate", "sampling.backend", "vllm", "task"),
        writes=("out", "metrics"),
        runs_model=True,
    ),
    Command(
        "evaluate-benchmark",
        "varreason.stages.evaluate:evaluate_benchmark",
        "greedy accuracy, avg@n and pass@k of one model (of this run, or any checkpoint: --model) on a "
        "math, science, knowledge or code benchmark, with the paper's protocol (code runs in a sandbox)",
        {
            "name": Opt(
                default=lambda o, _: P.model_name(o["model"]),
                help="model name, e.g. initial, sft, rft, vr-gml, vr-acc",
                show="the last part of --model",
            ),
            "benchmark": Opt(
                required=True,
                help="math500, aime24, aime25, amc23, gpqa_diamond, olympiadbench, mmlu_pro, livecodebench "
                "or humaneval",
            ),
            "model": Opt(help="any checkpoint: a directory or hub id (default: the run's model of --name)"),
            "source": Opt(
                help="the benchmark's file or hub id (default: its evaluate.benchmarks entry, else its hub id)"
            ),
            "out": _renamed(P.BENCH_SAMPLES, model="name", benchmark="benchmark"),
            "metrics": _renamed(P.BENCH_METRICS, model="name", benchmark="benchmark"),
        },
        reads=("seed", "evaluate", "sampling.backend", "vllm", "task.templates"),
        writes=("out", "metrics"),
        runs_model=True,
    ),
    Command(
        "report",
        "varreason.stages.report:run_report",
        "collect every model's metrics into one table (printed, and written), and the report page of the run",
        {
            "summary": P.SUMMARY,
            "page": P.REPORT_PAGE,
            "accuracy_plot": P.ACCURACY_PLOT,
            "iwae_plot": P.IWAE_PLOT,
            "html": Opt(default=P.REPORT_HTML, help="the report page (one self-contained HTML file); '' to skip it"),
            "plots": Opt(default=P.REPORT_PLOTS_DIR, help="folder for each page plot's data (CSV) and drawing (PNG)"),
        },
        reads=(
            "seed",
            "sampling.k",
            "sampling.shards",
            "select.mode",
            "select.threshold",
            "task.source",
            "evaluate.benchmarks",
        ),  # fmt: skip
        writes=("summary", "page", "accuracy_plot", "iwae_plot", "html", "plots"),
    ),
    Command(
        "update-posterior",
        "varreason.stages.train:update_posterior",
        "round two: fine-tune q on its own traces weighted by rho~ (forward KL), for the claims run",
        {
            "weights": Opt(required=True, help="a weights table (stage weights) of q's traces"),
            "posterior": P.POSTERIOR_MODEL,
            "out": Opt(required=True),
        },
        reads=("seed", "update_posterior", "model.trainable_layers", "task.templates"),
        writes=("out",),
        runs_model=True,
    ),
    Command(
        "claims-report",
        "varreason.stages.claims_report:claims_report",
        "the claims report across seeds as the plan registers it: Holm-adjusted tests, intervals, mechanism",
        {
            "plan": Opt(
                default=lambda o, params: params["claims"]["plan"],
                help="the pre-registered plan",
                show="params claims.plan",
            ),
            "root": Opt(default="claims", help="folder holding seed-N/ of each seed"),
            "json": Opt(default="claims/claims.json", dest="json_out"),
            "page": Opt(default="claims/claims.md", dest="page_out"),
        },
        reads=("claims.plan", "sampling.shards", "task.modulus", "task.source"),
        writes=("json", "page"),
    ),
]

TOOLS = [
    Command(
        "validate-params",
        "varreason.params:check_file",
        "check the params file (with any --set overrides) against the schema and exit",
        needs_params=False,
    ),
    Command(
        "traces",
        "varreason.traces_cli:run",
        "inspect a trace corpus: summary, show QUESTION_ID, list, export",
        configure="varreason.traces_cli:configure",
    ),
    Command(
        "dvc-yaml",
        "varreason.dvcyaml:write_or_check",
        "write dvc.yaml from the Snakefile's DAG (with --check: fail, with a diff, if it has drifted)",
        {"snakefile": "Snakefile", "out": "dvc.yaml", "check": Opt(action="store_true")},
    ),
    Command(
        "pull",
        "varreason.dvcsync:pull",
        "dvc pull, then mark the restored outputs up to date for Snakemake (restored mtimes would rerun them)",
        {
            "remote": Opt(help="DVC remote name (default: the default remote)"),
            "cores": Opt(default=1, type=int),
        },
    ),
    Command(
        "doctor",
        "varreason.doctor:doctor",
        "check the environment and a run folder (params, every stage output, logs of failed jobs) and say "
        "what is wrong, with the fix; exit 1 when a problem is found",
        {
            "run_dir": Opt(default=".", help="the run folder (where params.yaml is and the outputs go)"),
            "json": Opt(action="store_true", help="print the checks as one JSON object", dest="as_json"),
            "only": Opt(choices=("env", "run"), help="check only the environment or the run folder"),
        },
        needs_params=False,
    ),
    Command(
        "install-profile",
        "varreason.profile:install",
        "install the SLURM profile where Snakemake finds `--profile slurm` (~/.config/snakemake/slurm)",
        {
            "source": Opt(default="workflow/profiles/slurm", help="the shipped profile folder"),
            "partition": Opt(help="your cluster's partition for GPU jobs"),
            "account": Opt(help="your SLURM account"),
            "dest": Opt(help="install here instead ($XDG_CONFIG_HOME/snakemake/slurm)"),
        },
        needs_params=False,
    ),
    Command(
        "plan",
        "varreason.cost_plan:plan",
        "the run's cost before it starts, from --params alone: per stage, tokens, GPU-hours on --gpu (rates "
        "measured or estimated: src/varreason/throughput.yaml), the SLURM resources of its jobs; a total, assumptions",
        {
            "gpu": Opt(default="h100-80gb", help="a GPU of the throughput table: h100-80gb, h200"),
            "model_class": Opt(help="the table's model class (default: the smallest at least model.pretrained's size)"),
        },
    ),
]

COMMANDS = {c.name: c for c in STAGES + TOOLS}


# Every table a run writes (path pattern -> the columns its readers need): varreason doctor checks
# each Parquet output of a run against this.
ARTIFACTS = {
    P.PREPARED_TRAIN: C.PREPARED_TRAIN,
    P.PREPARED_TEST: C.PREPARED_TEST,
    P.POSTERIOR_TRACES: C.POSTERIOR_TRACES,
    P.SCORED_TRACES: C.SCORED_TRACES,
    P.ROLLOUTS: C.ROLLOUTS,
    P.INITIAL_SAMPLES: C.INITIAL_SAMPLES,
    P.WEIGHTED_TRACES: C.WEIGHTED_TRACES,
    P.FINAL_SET: C.FINAL_SET,
    P.BASELINE_SET: C.FINAL_SET,
    P.EVAL_SAMPLES: C.EVAL_SAMPLES,
    P.BENCH_SAMPLES: C.EVAL_SAMPLES,
}


def writer_of(path: str) -> str | None:
    """Which stage writes ``path`` (matched on its DAG path pattern), in words with the command; None if none.

    E.g. ``data/models/final-gml``: "stage train_final (`varreason train-final --estimator gml`, or
    `snakemake data/models/final-gml`)".
    """
    p = Path(path).as_posix().rstrip("/")
    for c in STAGES:
        for w in c.writes:
            pattern = c.option(w).shown
            m = P.pattern_regex(pattern).search(p) if pattern else None
            if m:
                values = {n: v for n, v in m.groupdict().items() if n != "path"}
                flags = "".join(f" --{n.replace('_', '-')} {v}" for n, v in values.items())
                return f"stage {c.name.replace('-', '_')} (`varreason {c.name}{flags}`, or `snakemake {m['path']}`)"
    return None


def stage_table_markdown() -> str:
    """The stage table of docs/pipeline.md and data/README.md: command, what it writes, params it reads."""
    lines = ["| stage (`varreason ...`) | writes | reads params |", "|---|---|---|"]
    for c in STAGES:
        shown = [c.option(w).shown or f"--{w.replace('_', '-')}" for w in c.writes]
        outs = ", ".join(f"`{s}`" for s in shown)
        lines.append(f"| `{c.name}` | {outs} | {', '.join(f'`{k}`' for k in c.reads)} |")
    return "\n".join(lines) + "\n"

"""The ``varreason`` command: one subcommand per pipeline stage (the Snakemake rules call these).

Every path defaults to its place in the DAG (varreason/paths.py), so ``varreason prepare`` in the
repo root does what the ``prepare`` rule does.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from varreason import paths as P
from varreason.io import InputError
from varreason.params import ParamsError, load_params

# The stage modules each subcommand runs (dvc.yaml lists them, with their imports, as deps).
STAGE_MODULES = {
    "prepare": ["varreason.stages.prepare"],
    "train-initial": ["varreason.stages.train"],
    "train-posterior": ["varreason.stages.train"],
    "sample-posterior": ["varreason.stages.sample"],
    "sample-initial": ["varreason.stages.sample"],
    "score": ["varreason.stages.score"],
    "rollout": ["varreason.stages.score"],
    "weights": ["varreason.stages.weights"],
    "build-final": ["varreason.stages.build"],
    "train-final": ["varreason.stages.train"],
    "baselines": ["varreason.stages.build", "varreason.stages.train"],
    "evaluate": ["varreason.stages.evaluate"],
    "evaluate-benchmark": ["varreason.stages.evaluate"],
    "report": ["varreason.stages.report"],
    "update-posterior": ["varreason.stages.train"],
    "claims-report": ["varreason.stages.claims_report"],
}


def _cmd(sub, command: str, summary: str, /, **args) -> argparse.ArgumentParser:
    p = sub.add_parser(
        command, help=summary, description=summary, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    for flag, spec in args.items():
        kw = dict(spec) if isinstance(spec, dict) else {"default": spec}
        p.add_argument("--" + flag.replace("_", "-"), **kw)
    return p


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="varreason",
        description="Variational reasoning pipeline stages. Run the whole DAG with `snakemake --cores 2` "
        "(or `make run`); these subcommands run one stage each.",
    )
    ap.add_argument("--params", default="params.yaml", help="params file (validated before any work)")
    ap.add_argument(
        "--log",
        default=None,
        help="write stdout and stderr (progress bars included) to this file; its folder is created",
    )
    ap.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one param by dotted key (repeatable), e.g. --set seed=3 --set select.mode=argmax",
    )
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: params runtime.threads)")
    sub = ap.add_subparsers(dest="command", required=True, metavar="STAGE")
    _cmd(sub, "validate-params", "check the params file against the schema and exit")
    _cmd(sub, "prepare", "write the train/test splits", train_out=P.PREPARED_TRAIN, test_out=P.PREPARED_TEST)
    _cmd(sub, "train-initial", "train pi_0 by SFT on the original data", train=P.PREPARED_TRAIN, out=P.INITIAL_MODEL)
    _cmd(
        sub,
        "train-posterior",
        "train the posterior q(z|x,y') on hinted prompts",
        train=P.PREPARED_TRAIN,
        initial=P.INITIAL_MODEL,
        out=P.POSTERIOR_MODEL,
    )
    shard = {"type": int, "default": 0}
    _cmd(
        sub,
        "sample-posterior",
        "sample K traces per question of one shard from q",
        train=P.PREPARED_TRAIN,
        posterior=P.POSTERIOR_MODEL,
        shard=shard,
        out={"default": None},
    )
    _cmd(
        sub,
        "sample-initial",
        "sample K verified completions per question of one shard from pi_0 (RFT)",
        train=P.PREPARED_TRAIN,
        initial=P.INITIAL_MODEL,
        shard=shard,
        out={"default": None},
    )
    _cmd(
        sub,
        "score",
        "per-token log-probs of traces under pi_0 and q, and of the answer under pi_0",
        traces={"default": None},
        initial=P.INITIAL_MODEL,
        posterior=P.POSTERIOR_MODEL,
        shard=shard,
        out={"default": None},
    )
    _cmd(
        sub,
        "rollout",
        "sample M answers per trace from pi_0 and verify them (Acc estimator)",
        traces={"default": None},
        initial=P.INITIAL_MODEL,
        shard=shard,
        out={"default": None},
    )
    _cmd(
        sub,
        "weights",
        "importance weights, ESS and IWAE bound for one estimator",
        estimator={"choices": P.ESTIMATORS, "required": True},
        scored={"nargs": "+", "required": True},
        rollouts={"nargs": "*", "default": []},
        out={"default": None},
        metrics={"default": None},
    )
    _cmd(
        sub,
        "build-final",
        "select traces by weight and write the final training set",
        estimator={"choices": P.ESTIMATORS, "required": True},
        weights={"default": None},
        train=P.PREPARED_TRAIN,
        initial=P.INITIAL_MODEL,
        out={"default": None},
        metrics={"default": None},
    )
    _cmd(
        sub,
        "train-final",
        "weighted SFT of pi_0 on the final training set",
        estimator={"choices": P.ESTIMATORS, "required": True},
        final_set={"default": None},
        initial=P.INITIAL_MODEL,
        out={"default": None},
    )
    _cmd(
        sub,
        "baselines",
        "build a baseline's set (sft: original data; rft: pi_0's correct samples) and train it",
        kind={"choices": P.BASELINES, "required": True},
        train=P.PREPARED_TRAIN,
        samples={"nargs": "*", "default": None},
        initial=P.INITIAL_MODEL,
        set_out={"default": None},
        set_metrics={"default": None},
        out={"default": None},
    )
    _cmd(
        sub,
        "evaluate",
        "greedy accuracy, avg@n and pass@k of one model on the test split",
        name={"required": True, "help": "model name, e.g. initial, sft, rft, vr-gml, vr-acc"},
        model={"default": None},
        test=P.PREPARED_TEST,
        out={"default": None},
        metrics={"default": None},
    )
    _cmd(
        sub,
        "evaluate-benchmark",
        "greedy accuracy, avg@n and pass@k of one model on a math/science benchmark (evaluate.benchmarks)",
        name={"required": True, "help": "model name, e.g. initial, sft, rft, vr-gml, vr-acc"},
        benchmark={"required": True, "help": "math500, aime24, aime25, amc23, gpqa_diamond or olympiadbench"},
        model={"default": None},
        out={"default": None},
        metrics={"default": None},
    )
    _cmd(
        sub,
        "report",
        "collect every model's metrics into one table (printed, and written), and the report page of the run",
        summary=P.SUMMARY,
        page=P.REPORT_PAGE,
        accuracy_plot=P.ACCURACY_PLOT,
        iwae_plot=P.IWAE_PLOT,
        html={"default": P.REPORT_HTML, "help": "the report page (one self-contained HTML file); '' to skip it"},
        plots={"default": P.REPORT_PLOTS_DIR, "help": "folder for each page plot's data (CSV) and drawing (PNG)"},
    )
    _cmd(
        sub,
        "update-posterior",
        "round two: fine-tune q on its own traces weighted by rho~ (forward KL), for the claims run",
        weights={"required": True, "help": "a weights table (stage weights) of q's traces"},
        posterior=P.POSTERIOR_MODEL,
        out={"required": True},
    )
    _cmd(
        sub,
        "claims-report",
        "the claims report across seeds: intervals, paired tests, difficulty bins, ablations",
        seeds={"type": int, "nargs": "+", "default": None, "help": "default: params claims.seeds"},
        root={"default": "claims", "help": "folder holding seed-N/ of each seed"},
        json={"default": "claims/claims.json"},
        page={"default": "claims/claims.md"},
    )
    from varreason.traces_cli import add_parser as add_traces_parser

    add_traces_parser(sub)
    _cmd(
        sub,
        "dvc-yaml",
        "write dvc.yaml from the Snakefile's DAG (with --check: fail, with a diff, if it has drifted)",
        snakefile="Snakefile",
        out="dvc.yaml",
        check={"action": "store_true"},
    )
    _cmd(
        sub,
        "pull",
        "dvc pull, then mark the restored outputs up to date for Snakemake (restored mtimes would rerun them)",
        remote={"default": None, "help": "DVC remote name (default: the default remote)"},
        cores={"type": int, "default": 1},
    )
    _cmd(
        sub,
        "doctor",
        "check the environment and a run folder (params, every stage output, logs of failed jobs) and say "
        "what is wrong, with the fix; exit 1 when a problem is found",
        run_dir={"default": ".", "help": "the run folder (where params.yaml is and the outputs go)"},
        json={"action": "store_true", "help": "print the checks as one JSON object"},
        only={"choices": ["env", "run"], "default": None, "help": "check only the environment or the run folder"},
    )
    _cmd(
        sub,
        "install-profile",
        "install the SLURM profile where Snakemake finds `--profile slurm` (~/.config/snakemake/slurm)",
        source={"default": "workflow/profiles/slurm", "help": "the shipped profile folder"},
        partition={"default": None, "help": "your cluster's partition for GPU jobs"},
        account={"default": None, "help": "your SLURM account"},
        dest={"default": None, "help": "install here instead ($XDG_CONFIG_HOME/snakemake/slurm)"},
    )
    return ap


def run(args: argparse.Namespace, params: dict) -> None:  # noqa: C901 - a flat dispatch table
    c = args.command
    k = params["sampling"]["shards"] if params else 0
    if c == "prepare":
        from varreason.stages.prepare import prepare

        n_train, n_test = prepare(params, args.train_out, args.test_out)
        print(f"prepared {n_train} train / {n_test} test questions")
    elif c == "train-initial":
        from varreason.stages.train import train_initial

        train_initial(params, args.train, args.out)
    elif c == "train-posterior":
        from varreason.stages.train import train_posterior

        train_posterior(params, args.train, args.initial, args.out)
    elif c == "sample-posterior":
        from varreason.stages.sample import sample_posterior

        sample_posterior(
            params, args.train, args.posterior, args.shard, args.out or P.POSTERIOR_TRACES.format(shard=args.shard)
        )
    elif c == "sample-initial":
        from varreason.stages.sample import sample_initial

        sample_initial(
            params, args.train, args.initial, args.shard, args.out or P.INITIAL_SAMPLES.format(shard=args.shard)
        )
    elif c == "score":
        from varreason.stages.score import score

        score(
            params,
            args.traces or P.POSTERIOR_TRACES.format(shard=args.shard),
            args.initial,
            args.posterior,
            args.out or P.SCORED_TRACES.format(shard=args.shard),
        )
    elif c == "rollout":
        from varreason.stages.score import rollout

        rollout(
            params,
            args.traces or P.POSTERIOR_TRACES.format(shard=args.shard),
            args.initial,
            args.shard,
            args.out or P.ROLLOUTS.format(shard=args.shard),
        )
    elif c == "weights":
        from varreason.stages.weights import weights

        e = args.estimator
        weights(
            params,
            e,
            args.scored,
            args.out or P.WEIGHTED_TRACES.format(estimator=e),
            args.metrics or P.WEIGHT_METRICS.format(estimator=e),
            args.rollouts,
        )
    elif c == "build-final":
        from varreason.stages.build import build_final

        e = args.estimator
        build_final(
            params,
            args.weights or P.WEIGHTED_TRACES.format(estimator=e),
            args.train,
            args.initial,
            args.out or P.FINAL_SET.format(estimator=e),
            args.metrics or P.FINAL_SET_METRICS.format(estimator=e),
        )
    elif c == "train-final":
        from varreason.stages.train import train_final

        e = args.estimator
        train_final(
            params,
            args.final_set or P.FINAL_SET.format(estimator=e),
            args.initial,
            args.out or P.FINAL_MODEL.format(estimator=e),
        )
    elif c == "baselines":
        from accelerate import PartialState

        from varreason.stages.build import build_baseline
        from varreason.stages.train import train_final

        b = args.kind
        set_out = args.set_out or P.BASELINE_SET.format(baseline=b)
        state = PartialState()  # under `accelerate launch`: the main process builds the set, all train on it
        if state.is_main_process:
            build_baseline(
                params,
                b,
                args.train,
                args.samples or P.shards(P.INITIAL_SAMPLES, k),
                args.initial,
                set_out,
                args.set_metrics or P.BASELINE_SET_METRICS.format(baseline=b),
            )
        state.wait_for_everyone()
        train_final(params, set_out, args.initial, args.out or P.BASELINE_MODEL.format(baseline=b))
    elif c == "evaluate":
        from varreason.stages.evaluate import evaluate

        n = args.name
        if args.model is None and n not in P.EVAL_MODELS:
            raise InputError(f"--name {n!r}: unknown model; pass --model DIR or one of {list(P.EVAL_MODELS)}")
        evaluate(
            params,
            args.model or P.EVAL_MODELS[n],
            args.test,
            n,
            args.out or P.EVAL_SAMPLES.format(model=n),
            args.metrics or P.EVAL_METRICS.format(model=n),
        )
    elif c == "evaluate-benchmark":
        from varreason.stages.evaluate import evaluate_benchmark

        n, b = args.name, args.benchmark
        if args.model is None and n not in P.EVAL_MODELS:
            raise InputError(f"--name {n!r}: unknown model; pass --model DIR or one of {list(P.EVAL_MODELS)}")
        if b not in params["evaluate"]["benchmarks"]:
            raise InputError(
                f"--benchmark {b!r} is not in evaluate.benchmarks {list(params['evaluate']['benchmarks'])}"
            )
        evaluate_benchmark(
            params,
            args.model or P.EVAL_MODELS[n],
            b,
            n,
            args.out or P.BENCH_SAMPLES.format(model=n, benchmark=b),
            args.metrics or P.BENCH_METRICS.format(model=n, benchmark=b),
        )
    elif c == "report":
        from varreason.stages.report import report, report_html

        metrics = (
            {n: P.EVAL_METRICS.format(model=n) for n in P.EVAL_MODELS},
            {e: P.WEIGHT_METRICS.format(estimator=e) for e in P.ESTIMATORS},
            {
                **{f"vr-{e}": P.FINAL_SET_METRICS.format(estimator=e) for e in P.ESTIMATORS},
                **{b: P.BASELINE_SET_METRICS.format(baseline=b) for b in P.BASELINES},
            },
        )
        page = report(*metrics, args.summary, args.page, args.accuracy_plot, args.iwae_plot)
        if args.html:
            report_html(
                params,
                *metrics,
                corpora={e: P.WEIGHTED_TRACES.format(estimator=e) for e in P.ESTIMATORS},
                initial_samples=P.shards(P.INITIAL_SAMPLES, params["sampling"]["shards"]),
                eval_samples={n: P.EVAL_SAMPLES.format(model=n) for n in P.EVAL_MODELS},
                model_dirs={"initial": P.INITIAL_MODEL, "posterior": P.POSTERIOR_MODEL, **P.EVAL_MODELS},
                html_out=args.html,
                plots_dir=args.plots,
            )
        print(page)
    elif c == "update-posterior":
        from varreason.stages.train import update_posterior

        update_posterior(params, args.weights, args.posterior, args.out)
    elif c == "claims-report":
        from varreason.stages.claims_report import claims_report

        print(claims_report(params, args.seeds or params["claims"]["seeds"], args.root, args.json, args.page))
    elif c == "traces":
        from varreason.traces_cli import run as run_traces

        run_traces(args, params)
    elif c == "doctor":
        from varreason.doctor import doctor

        raise SystemExit(doctor(args.run_dir, as_json=args.json, only=args.only))
    elif c == "install-profile":
        from varreason.profile import install_profile

        out = install_profile(args.source, args.partition, args.account, args.dest)
        print(f"installed {out}/config.yaml: `snakemake --profile slurm` now uses it")
    elif c == "pull":
        from varreason.dvcsync import pull

        raise SystemExit(pull(args.remote, cores=args.cores))
    elif c == "dvc-yaml":
        from varreason.dvcyaml import write_or_check

        raise SystemExit(write_or_check(Path(args.snakefile), Path(args.params).parent, Path(args.out), args.check))


def _redirect_output(path: str) -> None:
    """Send this process's stdout/stderr to ``path`` (the same command works under Snakemake and DVC).

    Under ``accelerate launch`` every process runs this: ranks above 0 write ``path.rank{N}``.
    """
    rank = int(os.environ.get("RANK", "0") or 0)
    if rank > 0:
        path = f"{path}.rank{rank}"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.log:
        try:
            _redirect_output(args.log)
        except OSError as e:
            msg = f"--log {args.log}: cannot be written ({e.strerror})"
            print(f"varreason {args.command}: error: {msg}", file=sys.stderr)
            return 2
    try:
        if args.command in ("install-profile", "doctor"):  # need no params file (doctor checks the run's)
            run(args, {})
            return 0
        params = load_params(args.params, args.overrides)
        if args.command == "validate-params":
            print(f"{args.params}: ok")
            return 0
        import torch

        torch.set_num_threads(args.threads or params["runtime"]["threads"])
        run(args, params)
    except (ParamsError, InputError, FileNotFoundError) as e:
        print(f"varreason {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

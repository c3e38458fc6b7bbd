"""The ``varreason`` command: one subcommand per pipeline stage (the Snakemake rules call these) and
a few tools. Parser and dispatch come from the stage table (varreason/pipeline.py): each option is
the keyword argument of the same name of the command's function, and every path defaults to its
place in the DAG, so ``varreason prepare`` in the repo root does what the ``prepare`` rule does.

Only commands that run a model import torch: ``traces``, ``doctor``, ``dvc-yaml`` and ``--help``
start in a fraction of a second.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys
from pathlib import Path

from varreason.command import Command
from varreason.io import ArtifactError, InputError
from varreason.params import ParamsError, load_params
from varreason.pipeline import COMMANDS, writer_of


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
    for c in COMMANDS.values():
        p = sub.add_parser(c.name, help=c.summary, description=c.summary)
        for name in c.options:
            p.add_argument("--" + name.replace("_", "-"), dest=name, **c.option(name).argparse_kwargs())
        if c.configure:
            module, fn = c.configure.split(":")
            getattr(importlib.import_module(module), fn)(p)
    return ap


def resolve_options(c: Command, args: argparse.Namespace, params: dict) -> dict:
    """The command's options, defaults filled in: path patterns formatted with the other options."""
    opts = {name: getattr(args, name) for name in c.options}
    for name in c.options:
        o = c.option(name)
        if opts[name] is not None:
            continue
        if callable(o.default):
            opts[name] = o.default(opts, params)
        elif isinstance(o.default, str) and "{" in o.default:
            opts[name] = o.default.format(**opts)
    return opts


def run(c: Command, args: argparse.Namespace, params: dict) -> object:
    """Call the command's function with the options (and params, args, --set overrides) it accepts."""
    fn = c.load()
    opts = resolve_options(c, args, params)
    available = {
        **{c.option(n).dest or n: v for n, v in opts.items()},
        "params": params,
        "args": args,
        "params_path": args.params,
        "overrides": args.overrides,
    }
    accepted = inspect.signature(fn).parameters
    return fn(**{k: v for k, v in available.items() if k in accepted})


def _written_by(e: Exception) -> str:
    """For an artifact of the DAG: which stage writes it, so the message says what to run."""
    if not isinstance(e, ArtifactError):
        return ""
    writer = writer_of(e.path)
    return f"; it is written by {writer}" if writer else "; pass the folder of a saved checkpoint (or a hub id)"


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
    c = COMMANDS[args.command]
    try:
        params = load_params(args.params, args.overrides) if c.needs_params else {}
        if c.runs_model:
            import torch

            from varreason.cpu_memory import retain_freed_memory
            from varreason.resume import install_stop_handlers

            # SLURM's warning before a time limit, preemption, scancel: checkpoint and exit to be resumed
            install_stop_handlers()
            retain_freed_memory()  # CPU tensors: no page faults again for memory freed by the last step

            torch.set_num_threads(args.threads or params["runtime"]["threads"])
        result = run(c, args, params)
    except (ParamsError, InputError, FileNotFoundError) as e:
        print(f"varreason {args.command}: error: {e}{_written_by(e)}", file=sys.stderr)
        return 2
    if isinstance(result, str):
        print(result)
    # a tool returns its exit status (or None); a stage returns what it computed
    return result if not c.is_stage and isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())

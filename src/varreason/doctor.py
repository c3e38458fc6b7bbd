"""``varreason doctor``: check the environment and a run folder, and say what is wrong in plain words.

This module is the entry point: it runs the checks of ``varreason.doctor_env`` (Python, package pins,
torch threads and GPUs, vLLM, math-verify, disk, SLURM) and of ``varreason.doctor_run`` (params.yaml,
every stage output of the DAG, failed jobs' logs, killed writers' leftovers, a stale lock), and
prints them as a checklist.

Each check is ``ok``, ``warning`` or ``problem``, each warning and problem with its fix. ``doctor``
returns 1 when a problem was found, else 0; ``--json`` prints the same as one JSON object.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from varreason.doctor_env import OK, PROBLEM, WARNING, Check, check_environment
from varreason.doctor_run import check_run


def doctor_checks(run_dir: Path | None, only: str | None = None, snakefile: Path | None = None) -> list[Check]:
    """The checks of the environment, then of the run folder; ``only`` is "env", "run" or None (both)."""
    checks, params, run_checks = [], None, []
    if only != "env" and run_dir is not None:
        run_checks, params = check_run(run_dir, snakefile)
    elif run_dir is not None and (run_dir / "params.yaml").exists():
        from varreason.params import ParamsError, load_params

        try:  # the environment checks read a few params (backend, threads, GPUs) when they can
            params = load_params(run_dir / "params.yaml")
        except ParamsError:
            params = None
    if only != "run":
        checks += check_environment(run_dir, params)
    return checks + run_checks


def render(checks: list[Check], run_dir: Path | None) -> str:
    """The checklist as text: one section per area, each warning and problem with its fix, a summary."""
    lines = []
    for area, title in (("environment", "Environment"), ("run", f"Run folder {run_dir}")):
        group = [c for c in checks if c.area == area]
        if not group:
            continue
        lines.append(title)
        for c in group:
            lines.append(f"  {c.status:<8} {c.detail}")
            if c.fix and c.status != OK:
                lines.append(f"  {'':<8}   fix: {c.fix}")
    n_problem = sum(c.status == PROBLEM for c in checks)
    n_warning = sum(c.status == WARNING for c in checks)
    if n_problem:
        lines.append(f"{n_problem} problem(s), {n_warning} warning(s): see the fixes above.")
    elif n_warning:
        lines.append(f"No problems; {n_warning} warning(s).")
    else:
        lines.append("All checks passed.")
    return "\n".join(lines)


def doctor(run_dir: str | Path | None = ".", as_json: bool = False, only: str | None = None) -> int:
    """Print the checklist (or JSON); 1 when a problem was found, else 0."""
    run_dir = Path(run_dir).resolve() if run_dir is not None else None
    checks = doctor_checks(run_dir, only)
    n_problem = sum(c.status == PROBLEM for c in checks)
    if as_json:
        doc = {
            "ok": n_problem == 0,
            "problems": n_problem,
            "warnings": sum(c.status == WARNING for c in checks),
            "run_dir": str(run_dir) if run_dir is not None else None,
            "checks": [asdict(c) for c in checks],
        }
        print(json.dumps(doc, indent=2))
    else:
        print(render(checks, run_dir))
    return 1 if n_problem else 0

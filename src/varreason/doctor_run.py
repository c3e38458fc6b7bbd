"""The run-folder half of ``varreason doctor``: is every stage output of the DAG there and sound?

Reads the folder's ``params.yaml`` against the schema and lists the DAG's jobs (from the folder's
``dvc.yaml``, else from the Snakefile through Snakemake). For each output: present or missing; Parquet
files readable (their footer) with the columns the next stage needs; model directories with
config.json and their weights; JSON metrics parseable. Also: outputs Snakemake marked incomplete (a
job killed before Snakemake recorded it), the log line of each job that failed, the checkpoint or parts
an unfinished job would resume from, leftover temp files of killed writers, and a stale Snakemake lock.
"""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import yaml

from varreason import paths as P
from varreason.doctor_env import OK, PROBLEM, REPO, WARNING, Check, _c
from varreason.locks import incomplete_outputs
from varreason.pipeline import ARTIFACTS
from varreason.resume import describe as resume_point

SKIP_DIRS = {".git", ".snakemake", ".dvc", ".venv", ".venv-vllm", "__pycache__", "node_modules", "src", "tests"}


@dataclass
class Job:
    """One job of the DAG: its stage name, the paths it writes and reads, and its log file."""

    stage: str
    outputs: list[str]
    inputs: list[str]
    log: str | None


def _log_of(cmd: str) -> str | None:
    m = re.search(r"--log\s+(\S+)", cmd or "")
    return m.group(1) if m else None


def _paths(entries) -> list[str]:
    return [next(iter(e)) if isinstance(e, dict) else str(e) for e in entries or []]


def jobs_from_dvc_yaml(path: Path) -> list[Job]:
    """The jobs of a generated dvc.yaml (outs and metrics are the outputs, deps the inputs)."""
    doc = yaml.safe_load(path.read_text()) or {}
    return [
        Job(name, _paths(s.get("outs")) + _paths(s.get("metrics")), _paths(s.get("deps")), _log_of(s.get("cmd", "")))
        for name, s in (doc.get("stages") or {}).items()
    ]


def jobs_from_snakefile(snakefile: Path, run_dir: Path) -> list[Job]:
    """The jobs Snakemake plans for ``run_dir`` (its whole DAG, done or not)."""
    from varreason.dvcyaml import snakemake_jobs, stage_name

    jobs = sorted(snakemake_jobs(snakefile, run_dir), key=stage_name)
    return [Job(stage_name(j), j["output"], j["input"], _log_of(j["cmd"])) for j in jobs]


def _columns_for(rel: str, table) -> list[str]:
    return next((cols for pat, cols in table if pat.search(rel)), [])


def _check_parquet(path: Path, rel: str, table) -> str | None:
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for a bad file
        return f"not a readable Parquet file, truncated or corrupt ({e})"
    missing = [c for c in _columns_for(rel, table) if c not in names]
    if missing:
        return f"missing column(s) {missing} that the next stage reads (written by an older version?)"
    return None


def _safetensors_ok(path: Path) -> str | None:
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n)) if 0 < n < size else None
    except (OSError, struct.error, ValueError):
        header = None
    if not isinstance(header, dict):
        return f"{path.name} has no readable header (truncated or corrupt)"
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end > size:
        return f"{path.name} is truncated ({size} bytes, its header says {8 + n + end})"
    return None


def _check_model_dir(path: Path) -> str | None:
    if not path.is_dir():
        return "not a folder (a model directory was expected)"
    config = path / "config.json"
    if not config.exists():
        return "no config.json: not a saved model"
    try:
        json.loads(config.read_text())
    except (OSError, ValueError) as e:
        return f"config.json is not valid JSON ({e})"
    weights = [f for f in P.WEIGHT_FILES if (path / f).exists()]
    if not weights:
        return f"no weights (none of {', '.join(P.WEIGHT_FILES)})"
    if weights[0] == "model.safetensors":
        return _safetensors_ok(path / "model.safetensors")
    return None


def _check_output(run_dir: Path, rel: str, table) -> str | None:
    """None when the output at ``rel`` looks done and sound, else what is wrong with it."""
    path = run_dir / rel
    if re.search(r"(^|/)data/models/[^/]+/?$", rel):
        return _check_model_dir(path)
    if path.is_dir():
        return None
    if rel.endswith(".parquet"):
        return _check_parquet(path, rel, table)
    if rel.endswith(".json"):
        try:
            json.loads(path.read_text())
        except (OSError, ValueError) as e:
            return f"not valid JSON ({e})"
    if path.stat().st_size == 0 and not rel.endswith((".md", ".csv")):
        return "empty file"
    return None


def _error_line(log: Path) -> str | None:
    """The line of a job's log that says why it failed (our CLI's error, a traceback's last line), if any."""
    try:
        lines = log.read_text(errors="replace").splitlines()[-300:]
    except OSError:
        return None
    for rx in (r": error: ", r"^\w+(\.\w+)*(Error|Exception)\b", r"\b(Killed|out of memory|Traceback)\b"):
        hit = next((ln for ln in reversed(lines) if re.search(rx, ln)), None)
        if hit:
            return hit.strip()[:300]
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and ") Z" in stat.read_text())


def _leftover_temps(run_dir: Path) -> list[tuple[Path, int | None]]:
    """Temp files (``.NAME.tmp-PID``) and folders (``NAME.tmp``) of the atomic writers, with the PID."""
    found = []
    for dirpath, dirnames, files in os.walk(run_dir):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.startswith(".venv")]
        for d in list(dirnames):
            if d.endswith(".tmp"):
                found.append((Path(dirpath) / d, None))
                dirnames.remove(d)
        for f in files:
            m = re.fullmatch(r"\..+\.tmp-(\d+)", f)
            if m:
                found.append((Path(dirpath) / f, int(m.group(1))))
    return sorted(found)


def _fmt_list(items: list[str], n: int = 6) -> str:
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


def check_run(run_dir: Path, snakefile: Path | None = None) -> tuple[list[Check], dict | None]:
    """The run folder's checks, and its params (None when they are missing or invalid)."""
    from varreason.params import ParamsError, load_params

    out: list[Check] = []
    if not run_dir.is_dir():
        return [_c(PROBLEM, "run", "run folder", f"{run_dir} is not a folder", "pass --run-dir DIR")], None
    params = None
    params_file = run_dir / "params.yaml"
    try:
        params = load_params(params_file)
        out.append(_c(OK, "run", "params.yaml", f"{params_file} is valid"))
    except ParamsError as e:
        fix = "fix the keys named above, then `varreason validate-params` rechecks"
        if not params_file.exists():
            fix = "copy params.yaml (or a preset of workflow/presets/) into the run folder"
        out.append(_c(PROBLEM, "run", "params.yaml", str(e), fix))

    jobs, source = None, None
    if (run_dir / "dvc.yaml").exists():
        try:
            jobs, source = jobs_from_dvc_yaml(run_dir / "dvc.yaml"), "dvc.yaml"
        except (OSError, yaml.YAMLError, AttributeError) as e:
            out.append(_c(WARNING, "run", "dvc.yaml", f"cannot be read ({e})", "regenerate: `varreason dvc-yaml`"))
    if jobs is None and params is not None:
        snakefile = snakefile or next((p for p in (run_dir / "Snakefile", REPO / "Snakefile") if p.exists()), None)
        if snakefile is not None:
            try:
                jobs, source = jobs_from_snakefile(snakefile, run_dir), str(snakefile)
            except Exception as e:  # noqa: BLE001 - Snakemake raises its own types for a bad workflow
                out.append(_c(WARNING, "run", "pipeline", f"Snakemake cannot list the DAG of {snakefile} ({e})"))
    if jobs is None:
        out.append(
            _c(
                WARNING,
                "run",
                "pipeline",
                "the stage outputs were not checked: no dvc.yaml in the folder and no valid params.yaml for "
                "the Snakefile",
                "fix params.yaml (see above), or generate dvc.yaml with `varreason dvc-yaml`",
            )
        )
    else:
        out += _check_jobs(run_dir, jobs, source)
    out += _check_leftovers(run_dir)
    return out, params


def _check_jobs(run_dir: Path, jobs: list[Job], source: str) -> list[Check]:
    # each Parquet output's path pattern (the stage table's ARTIFACTS) -> the columns its readers need
    table = [(P.pattern_regex(p), cols) for p, cols in ARTIFACTS.items()]
    exists = {o: (run_dir / o).exists() for j in jobs for o in j.outputs}
    incomplete = set(incomplete_outputs(run_dir))
    out, done, not_run = [], [], []
    for job in jobs:
        present = [o for o in job.outputs if exists[o]]
        missing = [o for o in job.outputs if not exists[o]]
        bad = []
        for o in present:
            if o in incomplete:
                bad.append(
                    _c(
                        PROBLEM,
                        "run",
                        o,
                        f"{o}: Snakemake marked it incomplete: stage {job.stage} was killed before it was recorded",
                        "the same command resumes and keeps it (outputs are written whole, so the Snakefile drops "
                        "the marker); `snakemake --cores 2 --rerun-incomplete` redoes the stage instead",
                    )
                )
                continue
            why = _check_output(run_dir, o, table)
            if why:
                bad.append(
                    _c(
                        PROBLEM,
                        "run",
                        o,
                        f"{o}: {why} (written by stage {job.stage})",
                        f"delete it and rerun its stage: `rm -r {o} && snakemake --cores 2 {o}`",
                    )
                )
        out += bad
        if missing:
            # read by a stage that has run: it was there, and is gone now
            readers = [j.stage for j in jobs if any(exists.get(x) for x in j.outputs) and set(missing) & set(j.inputs)]
            log = run_dir / job.log if job.log else None
            error = _error_line(log) if log and log.exists() else None
            if readers:
                out.append(
                    _c(
                        PROBLEM,
                        "run",
                        missing[0],
                        f"{_fmt_list(missing)}: missing, but stage(s) {_fmt_list(readers)} that read it have run: "
                        f"it was deleted or moved (it is written by stage {job.stage})",
                        "restore it (`varreason pull` if it is in a DVC remote), or rebuild it: "
                        f"`snakemake --cores 2 {missing[0]}` (the stages after it then rerun)",
                    )
                )
            elif error:
                out.append(
                    _c(
                        PROBLEM,
                        "run",
                        job.stage,
                        f"stage {job.stage} failed: {error} (log: {job.log})",
                        f"read {job.log}, fix the cause it names, then rerun `snakemake --cores 2`",
                    )
                )
            elif resumable := [r for r in (resume_point(run_dir / o) for o in missing) if r]:
                out.append(
                    _c(
                        WARNING,
                        "run",
                        job.stage,
                        f"stage {job.stage} is unfinished (killed, timed out or preempted): it resumes from "
                        + "; ".join(resumable),
                        "rerun the same command (`snakemake --cores 2`); only the work after that is redone",
                    )
                )
            elif log and log.exists():
                out.append(
                    _c(
                        WARNING,
                        "run",
                        job.stage,
                        f"stage {job.stage} started (its log {job.log} exists) but {_fmt_list(missing)} is missing: "
                        "the job was stopped, or is running now",
                        "rerun `snakemake --cores 2` (add --rerun-incomplete if Snakemake asks)",
                    )
                )
            else:
                not_run.append(job.stage)
        elif not bad:
            done.append(job.stage)
    if done:
        detail = f"{len(done)} of {len(jobs)} stage(s) done, outputs sound (DAG from {source}): {_fmt_list(done, 8)}"
        out.append(_c(OK, "run", "stages done", detail))
    if not_run:
        out.append(
            _c(
                WARNING,
                "run",
                "stages not run",
                f"{len(not_run)} of {len(jobs)} stage(s) not run yet: {_fmt_list(not_run, 8)}",
                "run the pipeline: `snakemake --cores 2` in the run folder (or `make run`)",
            )
        )
    return out


def _check_leftovers(run_dir: Path) -> list[Check]:
    out = []
    for path, pid in _leftover_temps(run_dir):
        rel = path.relative_to(run_dir)
        if pid is not None and _alive(pid):
            out.append(_c(OK, "run", str(rel), f"{rel}: being written now by process {pid}"))
            continue
        out.append(
            _c(
                WARNING,
                "run",
                str(rel),
                f"{rel}: a temp {'folder' if path.is_dir() else 'file'} left by a writer that was killed "
                "(its output was never renamed into place)"
                + (" - or a model being saved right now, if a training job is running" if pid is None else ""),
                f"delete it: `rm -r {rel}`",
            )
        )
    locks = run_dir / ".snakemake" / "locks"
    if locks.is_dir() and any(locks.glob("*.lock")):
        out.append(
            _c(
                WARNING,
                "run",
                "snakemake lock",
                f"{locks} holds a lock: a Snakemake run is going on in this folder, or one was killed",
                "if none is running, `snakemake --unlock` in the run folder",
            )
        )
    return out

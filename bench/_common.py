"""Shared by the benchmark scripts: model presets, the reference-style scorer, FLOP counts, timers.

Nothing here is downloaded: models are Qwen3 configs with random weights (seeded), data are
random token ids (seeded), so every run scores the same model on the same data.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

# Qwen3 shapes. "qwen3-0.6b-4l" is Qwen3-0.6B's width and vocabulary with 4 of its 28 layers (a
# CPU can score it in seconds, and the output layer's share of the work is that of a real small
# model on long traces); "embedded" is the pipeline's default tiny model (params.yaml model.*);
# "qwen3-0.6b" is the whole Qwen3-0.6B shape (0.6B parameters, for a GPU), "qwen3-4b" Qwen3-4B's.
QWEN3_0_6B = dict(
    vocab_size=151936,
    hidden_size=1024,
    num_hidden_layers=28,
    num_attention_heads=16,
    num_key_value_heads=8,
    head_dim=128,
    intermediate_size=3072,
)
# Qwen3-4B's shape (36 layers, width 2560, 32 query / 8 key-value heads, tied embeddings; 4.0B parameters)
QWEN3_4B = dict(
    vocab_size=151936,
    hidden_size=2560,
    num_hidden_layers=36,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=128,
    intermediate_size=9728,
)


def embedded_shape() -> dict:
    """The pipeline's default tiny model's shape, as params.yaml and the synthetic task's tokenizer make it."""
    import yaml

    from varreason.modeling import build_char_tokenizer, build_tiny_qwen3

    model_params = yaml.safe_load((Path(__file__).resolve().parent.parent / "params.yaml").read_text())["model"]
    config = build_tiny_qwen3(model_params, build_char_tokenizer(), seed=0).config
    return {key: getattr(config, key) for key in QWEN3_0_6B}


PRESETS: dict[str, dict] = {
    "qwen3-0.6b-4l": {**QWEN3_0_6B, "num_hidden_layers": 4},
    "embedded": {},  # made on demand by embedded_shape(): it builds the pipeline's own model
    "qwen3-0.6b": QWEN3_0_6B,
    "qwen3-4b": QWEN3_4B,
}


def build_model(preset: str, max_positions: int, device: str = "cpu", dtype=torch.float32, seed: int = 0):
    """A Qwen3ForCausalLM with random weights (tied embeddings, like Qwen3-0.6B), in eval mode."""
    config = Qwen3Config(
        **(embedded_shape() if preset == "embedded" else PRESETS[preset]),
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=None,
        attn_implementation="sdpa",
    )
    torch.manual_seed(seed)
    with torch.device(device):
        model = Qwen3ForCausalLM(config)
    return model.to(dtype).eval()


def make_data(vocab: int, rows: int, length: int, prompt_frac: float, seed: int = 0):
    """``rows`` random sequences of ``length`` tokens: a prompt of ``prompt_frac`` of them, then the completion."""
    g = torch.Generator().manual_seed(seed)
    p = max(1, round(length * prompt_frac))
    prompts = [torch.randint(2, vocab, (p,), generator=g).tolist() for _ in range(rows)]
    completions = [torch.randint(2, vocab, (length - p,), generator=g).tolist() for _ in range(rows)]
    return prompts, completions


@torch.no_grad()
def reference_scores(model, prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]]):
    """The public reference's way: one sequence at a time, the model's full logits, a float32
    log_softmax over the whole vocabulary at every position, then the completion's entries."""
    device = next(model.parameters()).device
    out = []
    for p, c in zip(prompts, completions, strict=True):
        ids = torch.tensor([list(p) + list(c)], device=device)
        logits = model(input_ids=ids).logits.float()
        logp = torch.log_softmax(logits[0, :-1], dim=-1)
        out.append(logp[len(p) - 1 :].gather(-1, ids[0, len(p) :, None]).squeeze(-1).tolist())
        del logits, logp
    return out


def forward_flops(model, lengths: Sequence[int], scored: Sequence[int]) -> float:
    """The forward FLOPs that scoring needs: every decoder matmul over every token, causal
    attention (QK^T and AV over the pairs a causal mask keeps), and the output layer at the scored
    positions only (a scorer need not compute logits for the prompt)."""
    cfg = model.config
    linear = sum(m.weight.numel() for m in model.model.layers.modules() if isinstance(m, torch.nn.Linear))
    attn_dim = cfg.num_attention_heads * cfg.head_dim
    head = cfg.hidden_size * cfg.vocab_size
    return float(
        sum(
            2 * linear * n + 4 * cfg.num_hidden_layers * attn_dim * n * (n + 1) / 2 + 2 * head * c
            for n, c in zip(lengths, scored, strict=True)
        )
    )


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn: Callable, device: str = "cpu"):
    """(result, seconds) of one call, device work included."""
    sync(device)
    t = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t


def matmul_rate(device: str = "cpu", dtype=torch.float32, n: int = 2048, repeats: int = 8) -> float:
    """The machine's measured matrix-product rate in FLOP/s: the best of ``repeats`` n x n x n products."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        _, s = timed(lambda: a @ b, device)
        best = min(best, s)
    return 2 * n**3 / best


def max_abs_diff(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> float:
    assert len(a) == len(b) and all(len(x) == len(y) for x, y in zip(a, b, strict=True))
    return max((abs(u - v) for x, y in zip(a, b, strict=True) for u, v in zip(x, y, strict=True)), default=0.0)


def load_average() -> float:
    return os.getloadavg()[0]

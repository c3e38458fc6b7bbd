"""Build, save and load the models: a tiny Qwen3 from a config, or any local/hub checkpoint.

The embedded default is a Qwen3ForCausalLM with random init and a character-level tokenizer
built locally with `tokenizers` (nothing downloaded). A param ``model.pretrained`` (a local
directory or a hub id) switches to a real checkpoint through the same AutoModel/AutoTokenizer path.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen3Config,
    Qwen3ForCausalLM,
)

PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"
# Every character the embedded task and its templates can write.
CHARSET = "0123456789+-*=.,:;|?ABCDEFGHIJKLMNOPQRSTUVWXYZ "


def build_char_tokenizer(charset: str = CHARSET) -> PreTrainedTokenizerFast:
    """One token per character; left padding so batched generation lines prompts up at the right."""
    vocab = {tok: i for i, tok in enumerate([PAD, EOS, UNK, *dict.fromkeys(charset)])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, eos_token=EOS, unk_token=UNK, padding_side="left"
    )


def build_tiny_qwen3(model_params: dict, tokenizer: PreTrainedTokenizerFast, seed: int) -> Qwen3ForCausalLM:
    """A randomly initialised Qwen3 causal LM sized by ``model_params``."""
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=model_params["hidden_size"],
        num_hidden_layers=model_params["num_layers"],
        num_attention_heads=model_params["num_heads"],
        num_key_value_heads=model_params["num_heads"],
        head_dim=model_params["head_dim"],
        intermediate_size=model_params["intermediate_size"],
        max_position_embeddings=model_params["max_positions"],
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    return Qwen3ForCausalLM(config)


def initial_model(model_params: dict, seed: int) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """The model a run starts from: a pretrained checkpoint if named, else a tiny random Qwen3."""
    if model_params.get("pretrained"):
        return load_model(model_params["pretrained"])
    tokenizer = build_char_tokenizer()
    return build_tiny_qwen3(model_params, tokenizer, seed), tokenizer


def _check_dir(path: str) -> None:
    if os.path.isdir(path) and not (Path(path) / "config.json").exists():
        raise FileNotFoundError(f"{path}: not a model directory (no config.json); was its stage run?")


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    """A checkpoint's tokenizer, with a pad token (EOS where it has none) and left padding."""
    path = str(path)
    _check_dir(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def load_model(path: str | Path) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """Load a checkpoint (local directory or hub id) in float32 for CPU work."""
    tokenizer = load_tokenizer(path)
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    model.eval()
    return model, tokenizer


def save_model_atomic(model: PreTrainedModel, tokenizer, out_dir: str | Path, state_dict: dict | None = None) -> None:
    """save_pretrained into a temp dir, then rename: a killed run never leaves a half model.

    ``state_dict``: the full weights gathered by the trainer (a sharded FSDP/ZeRO-3 model holds
    only its own shard).
    """
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp, state_dict=state_dict)
    tokenizer.save_pretrained(tmp)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)

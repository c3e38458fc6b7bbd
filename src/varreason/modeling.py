"""Build, save and load the models: a tiny Qwen3 from a config, or any local/hub checkpoint.

The embedded default is a Qwen3ForCausalLM with random init and a character-level tokenizer
built locally with `tokenizers` (nothing downloaded). A param ``model.pretrained`` (a local
directory or a hub id) switches to a real checkpoint through the same AutoModel/AutoTokenizer path.
"""

from __future__ import annotations

import json
import os
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

from varreason import paths as P
from varreason.io import ArtifactError, InputError, write_dir_atomic, write_json

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


def initial_model(
    model_params: dict, seed: int, base: str | Path | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """The model a run starts from: ``base``, else the checkpoint ``model.pretrained`` names (a .gguf file:
    its imported directory ``paths.BASE_MODEL``), else a tiny random Qwen3."""
    source = base or P.base_model(model_params.get("pretrained"))
    if source:
        try:
            return load_model(source)
        except ArtifactError:  # an output of this run (data/models/base): the CLI names its stage
            raise
        except InputError as e:
            raise InputError(f"model.pretrained: {e}") from e
    tokenizer = build_char_tokenizer()
    return build_tiny_qwen3(model_params, tokenizer, seed), tokenizer


def freeze_lower_layers(model: PreTrainedModel, trainable_layers: int | None) -> int:
    """Train only the top ``trainable_layers`` decoder layers and the final norm (None: everything).

    The embeddings (and with them a tied output layer), the lower layers and, when the model unties
    them, the output layer are frozen. A stated simplification for CPU runs of a pretrained model:
    the backward pass stops at the lowest trainable layer (about 2.5x faster steps for SmolLM2-135M
    with 10 of 30 layers). Returns the number of trainable parameters.
    """
    if trainable_layers is not None:
        layers = model.get_decoder().layers
        if not 1 <= trainable_layers <= len(layers):
            raise InputError(
                f"model.trainable_layers: {trainable_layers} is not within 1..{len(layers)} (the model's layers)"
            )
        model.requires_grad_(False)
        for layer in layers[len(layers) - trainable_layers :]:
            layer.requires_grad_(True)
        model.get_decoder().norm.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _looks_local(path: str) -> bool:
    """A path rather than a hub id (``name`` or ``owner/name``): absolute, relative with ./, or deeper."""
    return (
        os.path.isabs(path)
        or path.startswith((".", "~"))
        or path.count("/") > 1
        or "\\" in path
        or (path.count("/") == 1 and os.path.isdir(path.split("/")[0]))
    )


def check_model_dir(path: str | Path) -> None:
    """ArtifactError naming ``path`` when it is not a saved model (the CLI adds the stage that writes it).

    A missing local directory, a folder without config.json, or one without weights. Hub ids are
    left to transformers.
    """
    path = str(path)
    if os.path.isdir(path):
        if not (Path(path) / "config.json").exists():
            raise ArtifactError(f"{path}: not a model directory (no config.json)", path)
        if not any((Path(path) / f).exists() for f in P.WEIGHT_FILES):
            raise ArtifactError(f"{path}: model directory without weights (none of {list(P.WEIGHT_FILES)})", path)
    elif os.path.exists(path):
        raise ArtifactError(f"{path}: not a model directory (a file)", path)
    elif _looks_local(path):
        raise ArtifactError(f"{path}: model directory not found", path)


def _hub_error(path: str, e: Exception) -> InputError:
    if os.path.isdir(path):
        return ArtifactError(f"{path}: the checkpoint cannot be loaded ({type(e).__name__}: {e})", path)
    return InputError(f"{path}: not a local model directory, and not loadable as a hub id ({type(e).__name__}: {e})")


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    """A checkpoint's tokenizer, with a pad token (EOS where it has none) and left padding."""
    path = str(path)
    check_model_dir(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise _hub_error(path, e) from e
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def inference_device() -> tuple[torch.device, torch.dtype]:
    """Where sampling and scoring run: the first CUDA GPU in bfloat16 when there is one, else the CPU in float32."""
    if torch.cuda.is_available():
        return torch.device("cuda"), torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.device("cpu"), torch.float32


def load_model(
    path: str | Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """Load a checkpoint (local directory or hub id) in eval mode; float32 on the CPU unless told otherwise
    (training stages load it so: accelerate places it, mixed precision casts it)."""
    tokenizer = load_tokenizer(path)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype)
    except (OSError, ValueError) as e:
        raise _hub_error(str(path), e) from e
    model.to(device).eval()
    return model, tokenizer


def vocab_size(model_dir: str | Path, tokenizer) -> int:
    """How many token ids a model accepts: its embedding rows (config.json), at least the tokenizer's size."""
    n = len(tokenizer)
    config = Path(model_dir) / "config.json"
    if config.exists():
        try:
            cfg = json.loads(config.read_text())
        except (OSError, ValueError):
            return n
        text = cfg.get("text_config") if isinstance(cfg.get("text_config"), dict) else cfg
        if isinstance(text.get("vocab_size"), int):
            n = max(n, text["vocab_size"])
    return n


def save_model_atomic(
    model: PreTrainedModel,
    tokenizer,
    out_dir: str | Path,
    state_dict: dict | None = None,
    json_files: dict[str, object] | None = None,
) -> None:
    """save_pretrained into a temp dir, then rename: a killed (or failed: disk full) run never leaves a half model.

    ``state_dict``: the full weights gathered by the trainer (a sharded FSDP/ZeRO-3 model holds
    only its own shard). ``json_files``: file name -> object, written into the folder before the rename.
    """

    def fill(tmp: Path) -> None:
        model.save_pretrained(tmp, state_dict=state_dict)
        tokenizer.save_pretrained(tmp)
        for name, obj in (json_files or {}).items():
            write_json(obj, tmp / name)

    write_dir_atomic(out_dir, fill)

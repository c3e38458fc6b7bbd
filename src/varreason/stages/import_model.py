"""Stage ``import-model``: a local GGUF file (``model.pretrained: path/to/model.gguf``) into a Hugging
Face checkpoint directory that transformers and vLLM both load (safetensors, tokenizer, chat template).

transformers reads GGUF itself (``from_pretrained(folder, gguf_file=name)``, with the ``gguf``
package) and dequantises the weights to float32, but a model loaded that way refuses
``save_pretrained`` ("quantized with gguf and is not serializable"): the weights are copied into a
fresh model built from the same config, and the config's ``quantization_config`` is dropped from
config.json (vLLM would otherwise look for a GGUF quantisation method it does not have).

Simplification: the checkpoint is float32, the dequantised values of the GGUF file (a Q4_1 file's
weights are not bit-identical to the original bf16 release).
"""

from __future__ import annotations

import json
from pathlib import Path

from varreason.io import InputError, write_dir_atomic
from varreason.paths import is_gguf


def import_model(params: dict, out: str | Path) -> Path:
    """Convert the GGUF file named by ``model.pretrained`` into the checkpoint directory ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = params["model"]["pretrained"]
    if not is_gguf(source):
        raise InputError(f"model.pretrained: {source!r} is not a .gguf file; only GGUF files are imported")
    path = Path(source)
    if not path.is_file():
        raise InputError(
            f"model.pretrained: {source}: no such file (scripts/fetch-real-material.sh smollm2 downloads "
            "SmolLM2-135M-Instruct's GGUF file into external/)"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        quantised = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    except (OSError, ValueError, KeyError) as e:
        raise InputError(f"model.pretrained: {source}: not a GGUF model transformers can read ({e})") from e
    model = AutoModelForCausalLM.from_config(quantised.config, dtype=torch.float32)
    model.load_state_dict(quantised.state_dict())
    n_params = sum(p.numel() for p in model.parameters())

    def fill(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        config = json.loads((tmp / "config.json").read_text())
        config.pop("quantization_config", None)
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")

    write_dir_atomic(out, fill)
    print(f"imported {path.name}: {type(model).__name__}, {n_params / 1e6:.1f}M parameters -> {out}")
    return Path(out)

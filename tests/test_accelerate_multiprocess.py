"""train_sft under `accelerate launch` with 2 CPU processes (gloo) trains exactly as one process does.

The global batch of each step is the same examples whatever the number of processes, and the loss
is normalised by a dataset constant, so the loss curve and the final weights of 2 processes (and of
2 processes x 2 accumulation steps) match one process up to float summation order.
"""

from __future__ import annotations

import json
import os
import random
import runpy
import subprocess
import sys
import textwrap

import pytest
import torch
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.commands.launch import launch_command_parser

from conftest import REPO, TINY

CONFIGS = REPO / "workflow" / "accelerate"
LOSS_RTOL = 1e-4  # per-step global loss; measured max 1.6e-7 (float32 summation order only)
WEIGHT_ATOL = 1e-4  # final weights after 12 AdamW steps at lr 1e-2; measured max 2.4e-7

WORKER = textwrap.dedent(
    """
    import json
    import sys

    import torch
    from accelerate import PartialState
    from accelerate.state import AcceleratorState

    from varreason.modeling import build_char_tokenizer, build_tiny_qwen3
    from varreason.training import Example, train_sft


    def run(cfg, out):
        torch.set_num_threads(1)
        examples = [Example(**e) for e in cfg["examples"]]
        results, roles = {}, []
        for name, extra in cfg["runs"].items():
            model = build_tiny_qwen3(cfg["tiny"], build_char_tokenizer(), seed=0)
            saved = {}

            def save(m, state_dict):
                saved.update({k: v.detach().cpu().clone() for k, v in state_dict.items()})

            history, model = train_sft(model, examples, save=save, **cfg["train"], **extra)
            roles.append({"returned_model": model is not None, "saved": bool(saved)})
            if model is not None:  # the main process only
                torch.save(saved, f"{out}/{name}.pt")
                results[name] = history
        state = PartialState()
        with open(f"{out}/rank{state.process_index}.json", "w") as f:
            kind = str(AcceleratorState().distributed_type)
            json.dump({"num_processes": state.num_processes, "distributed_type": kind, "roles": roles}, f)
        if state.is_main_process:
            with open(f"{out}/histories.json", "w") as f:
                json.dump(results, f)


    if __name__ == "__main__":
        run(json.loads(sys.argv[1]), sys.argv[2])
    """
)


def _examples(n: int = 24, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [
        {
            "prompt_ids": [rng.randrange(3, 30) for _ in range(rng.randint(1, 6))],
            "completion_ids": [rng.randrange(3, 30) for _ in range(rng.randint(2, 10))] + [1],
            "weight": rng.uniform(0.5, 1.5),
        }
        for _ in range(n)
    ]


CFG = {
    "tiny": TINY,
    "examples": _examples(),
    "train": dict(pad_id=0, steps=12, batch_size=8, lr=1e-2, warmup_frac=0.2, weight_decay=0.01, seed=5, log_every=1),
}


def _load(out, names):
    histories = json.loads((out / "histories.json").read_text())
    return {n: ([h["loss"] for h in histories[n]], torch.load(out / f"{n}.pt")) for n in names}


def _assert_same_run(a, b, what):
    (loss_a, w_a), (loss_b, w_b) = a, b
    assert len(loss_a) == len(loss_b) == CFG["train"]["steps"]
    assert loss_b == pytest.approx(loss_a, rel=LOSS_RTOL), what
    assert w_a.keys() == w_b.keys()
    worst = max((w_a[k] - w_b[k]).abs().max().item() for k in w_a)
    rel = max(abs(x - y) / abs(x) for x, y in zip(loss_a, loss_b, strict=True))
    print(f"{what}: loss max rel diff {rel:.1e}, weights max abs diff {worst:.1e}")
    assert worst < WEIGHT_ATOL, f"{what}: weights differ by up to {worst:.2e}"


def test_two_processes_train_like_one(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    single, multi = tmp_path / "single", tmp_path / "multi"
    single.mkdir()
    multi.mkdir()

    cfg = {**CFG, "runs": {"one": {}, "accum2": {"grad_accum_steps": 2}}}
    runpy.run_path(str(script))["run"](cfg, str(single))  # one process, in this interpreter

    cfg = {**CFG, "runs": {"ddp": {}, "ddp_accum2": {"grad_accum_steps": 2}}}
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIGS / "cpu-2proc.yaml")]
    r = subprocess.run(
        [*cmd, str(script), json.dumps(cfg), str(multi)], env=env, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]

    # only the main process gets the model back and saves it
    for rank, main in ((0, True), (1, False)):
        info = json.loads((multi / f"rank{rank}.json").read_text())
        assert info["num_processes"] == 2 and info["distributed_type"] == "DistributedType.MULTI_CPU"
        assert info["roles"] == [{"returned_model": main, "saved": main}] * 2
    one = _load(single, ["one", "accum2"])
    two = _load(multi, ["ddp", "ddp_accum2"])
    assert one["one"][0][-1] < 0.95 * one["one"][0][0]  # it does train
    _assert_same_run(one["one"], one["accum2"], "1 process, 2 accumulation steps")
    _assert_same_run(one["one"], two["ddp"], "2 processes")
    _assert_same_run(one["one"], two["ddp_accum2"], "2 processes x 2 accumulation steps")


def test_a_launch_without_a_distributed_backend_is_refused(tmp_path, monkeypatch, tiny_model):
    """torchrun on a machine without GPUs and without ACCELERATE_USE_CPU: each process would train alone."""
    from varreason.training import Example, train_sft

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match="ACCELERATE_USE_CPU=true"):
        train_sft(
            tiny_model, [Example([5], [6, 1])], pad_id=0, steps=1, batch_size=2, lr=1e-3, warmup_frac=0,
            weight_decay=0, seed=0,
        )  # fmt: skip


@pytest.mark.parametrize("name", ["cpu-2proc.yaml", "fsdp.yaml", "deepspeed-zero3.yaml"])
def test_shipped_accelerate_configs_load(name):
    """accelerate 1.15 rejects unknown top-level keys; every nested key must be a launch option."""
    config = load_config_from_file(str(CONFIGS / name))
    options = {a.dest for a in launch_command_parser()._actions}
    for section in ("fsdp_config", "deepspeed_config"):
        for key in getattr(config, section):
            assert key in options, f"{name}: {section}.{key} is not an `accelerate launch` option"
    if name == "deepspeed-zero3.yaml":
        assert config.deepspeed_config["zero_stage"] == 3
        assert "gradient_accumulation_steps" not in config.deepspeed_config  # train_sft's grad_accum_steps rules
    if name == "fsdp.yaml":
        assert config.fsdp_config["fsdp_transformer_layer_cls_to_wrap"] == "Qwen3DecoderLayer"
    if name == "cpu-2proc.yaml":
        assert config.num_processes == 2 and config.use_cpu

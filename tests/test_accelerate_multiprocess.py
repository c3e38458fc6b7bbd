"""train_sft under `accelerate launch` with 2 CPU processes (gloo) trains exactly as one process does,
on one machine and on 2 "machines" (two launchers on localhost, as `runtime.nodes: 2` starts them).

The global batch of each step is the same examples whatever the number of processes, and the loss
is normalised by a dataset constant, so the loss curve and the final weights of 2 processes (and of
2 processes x 2 accumulation steps) match one process up to float summation order.
"""

from __future__ import annotations

import json
import os
import random
import runpy
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import yaml
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.commands.launch import launch_command_parser

from conftest import REPO, TINY

CONFIGS = REPO / "workflow" / "accelerate"
LOSS_RTOL = 1e-4  # per-step global loss; measured max 1.6e-7 (float32 summation order only)
WEIGHT_ATOL = 1e-4  # final weights after 12 AdamW steps at lr 1e-2; measured max 2.4e-7

WORKER = textwrap.dedent(
    """
    import json
    import os
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
            machine = {k: os.environ.get(k) for k in ("GROUP_RANK", "LOCAL_RANK")}  # torchrun's node rank
            info = {"num_processes": state.num_processes, "distributed_type": kind, "roles": roles, **machine}
            json.dump(info, f)
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


def _one_process(tmp_path, runs: dict) -> tuple:
    """The worker script, and the runs trained by one process in this interpreter (its out folder)."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    single = tmp_path / "single"
    single.mkdir()
    runpy.run_path(str(script))["run"]({**CFG, "runs": runs}, str(single))
    return script, single


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_like_one(tmp_path):
    script, single = _one_process(tmp_path, {"one": {}, "accum2": {"grad_accum_steps": 2}})
    multi = tmp_path / "multi"
    multi.mkdir()

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


def test_two_machines_train_like_one(tmp_path):
    """`runtime.nodes: 2` without a cluster: the per-node launcher (python -m varreason.launch, what srun
    starts on each node) twice on localhost, with the environment srun gives each task, 1 process each."""
    script, single = _one_process(tmp_path, {"one": {}})
    nodes = tmp_path / "nodes"
    nodes.mkdir()

    cfg = {**CFG, "runs": {"nodes": {}}}
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env |= {"ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "SLURM_NNODES": "2"}
    # the first host of the node list is the main address; a free port instead of the job id's
    env |= {"SLURM_JOB_NODELIST": "127.0.0.1", "VARREASON_MAIN_PORT": str(_free_port())}
    launch = [sys.executable, "-m", "varreason.launch", "--config_file", str(CONFIGS / "cpu-2proc.yaml")]
    cmd = [*launch, "--num_processes", "2", str(script), json.dumps(cfg), str(nodes)]
    procs, logs, codes = [], [tmp_path / f"machine{rank}.log" for rank in (0, 1)], None
    try:
        for rank, log in enumerate(logs):
            with open(log, "w") as f:
                node_env = {**env, "SLURM_NODEID": str(rank)}
                procs.append(subprocess.Popen(cmd, env=node_env, stdout=f, stderr=f, start_new_session=True))
        codes = [p.wait(timeout=300) for p in procs]
    except subprocess.TimeoutExpired:
        pass
    finally:
        for p in procs:  # a launcher still running (timed out): it and its workers, by its process group
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=30)
    tails = "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in logs)
    assert codes == [0, 0], f"exit codes {codes} (None: timed out after 300 s)\n{tails}"
    assert "varreason.launch: machine 1 of 2:" in logs[1].read_text()

    # one process on each machine; the main process (machine 0) alone gets the model back and saves it
    for rank, main in ((0, True), (1, False)):
        info = json.loads((nodes / f"rank{rank}.json").read_text())
        assert info["num_processes"] == 2 and info["distributed_type"] == "DistributedType.MULTI_CPU"
        assert (info["GROUP_RANK"], info["LOCAL_RANK"]) == (str(rank), "0")
        assert info["roles"] == [{"returned_model": main, "saved": main}]
    one = _load(single, ["one"])
    _assert_same_run(one["one"], _load(nodes, ["nodes"])["nodes"], "2 machines x 1 process")


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


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A run folder with the smoke preset's params and its prepared train split."""
    from varreason.stages.prepare import prepare

    run = tmp_path_factory.mktemp("run")
    params = yaml.safe_load((REPO / "workflow" / "presets" / "smoke.yaml").read_text())
    (run / "params.yaml").write_text(yaml.safe_dump(params))
    prepare(params, run / "data/prepared/train.parquet", run / "data/prepared/test.parquet")
    return run


def _worker_pid(out: str, rank: int) -> int | None:
    """The pid of the training worker of ``rank`` writing ``out`` (from /proc: its command and RANK)."""
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            env = (proc / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if b"varreason.cli" in cmd and out.encode() in cmd and f"RANK={rank}".encode() in env:
            return int(proc.name)
    return None


def test_a_stop_signal_to_one_process_checkpoints_all_and_the_rerun_resumes(tmp_path, tiny_run):
    """2 processes under accelerate launch, train-initial through the CLI: SIGUSR1 to rank 1 alone (a
    signal reaches the processes at different times); every process saves at the same step, the job
    exits non-zero, and the same command resumes to the weights of an uninterrupted 2-process run."""
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIGS / "cpu-2proc.yaml")]
    cli = [*launch, "-m", "varreason.cli", "--params", "params.yaml", "--set", "train_initial.steps=30"]
    cli += ["--set", "checkpoint.every_steps=100", "train-initial", "--train", "data/prepared/train.parquet"]

    def run(out: str, **extra) -> subprocess.CompletedProcess:
        return subprocess.run([*cli, "--out", out], cwd=tiny_run, env={**env, **extra}, capture_output=True, text=True)

    r = run("mp/uninterrupted")
    assert r.returncode == 0, r.stderr[-3000:]
    out = str(tiny_run / "mp" / "resumed")
    heartbeat = tmp_path / "heartbeat"
    slow = {"VARREASON_TEST_STEP_SLEEP_S": "0.2", "VARREASON_HEARTBEAT": str(heartbeat)}
    p = subprocess.Popen(
        [*cli, "--out", out], cwd=tiny_run, env={**env, **slow}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        while not (heartbeat.exists() and "step 5/" in heartbeat.read_text()):
            assert p.poll() is None, p.stdout.read().decode()[-3000:]
            time.sleep(0.05)
        os.kill(_worker_pid(out, 1), signal.SIGUSR1)
        log = p.communicate(timeout=300)[0].decode()
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode != 0 and "SIGUSR1 received: stopping with status 75" in log, log[-3000:]
    saved = sorted(d.name for d in Path(out + ".ckpt").glob("step-*"))
    assert len(saved) == 1 and not Path(out).exists(), saved
    r = run("mp/resumed")
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"resuming from step {int(saved[0].split('-')[1])} of 30" in r.stdout + r.stderr
    for f in ("model.safetensors", "train_log.json"):
        assert (tiny_run / "mp/resumed" / f).read_bytes() == (tiny_run / "mp/uninterrupted" / f).read_bytes(), f

"""How a training rule starts its stage: plain ``varreason``, ``accelerate launch`` on one node, or
``accelerate launch`` on every node of a SLURM allocation (``runtime.nodes`` > 1).

The Snakefile turns ``runtime`` of params.yaml into the training rules' command prefix
(:func:`train_launch`) and their resources (:func:`train_resources`), so that what a job asks SLURM
for and what it runs come from one place and can be tested without a cluster.

Several nodes (docs/slurm.md#several-nodes). SLURM's executor plugin submits the job with
``--nodes=N --ntasks=N`` and, because the job carries the ``mpi`` resource, its jobstep plugin runs
the rule's command in the batch step itself instead of wrapping it in ``srun -n1`` (which would pin
it to one node and make our own ``srun`` a nested step). The command then starts one task per node
with ``srun --ntasks-per-node=1``; each task is ``python -m varreason.launch``, which reads its node's
rank and the first node's name from SLURM's environment and execs ``accelerate launch`` with
``--num_machines``, ``--machine_rank``, ``--main_process_ip`` and ``--main_process_port`` (static
rendezvous: torchrun on node 0 hosts the store, the others connect to it).
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Mapping
from typing import Any

PORT_BASE, PORT_SPAN = 20000, 10000  # main_process_port: PORT_BASE + SLURM job id mod PORT_SPAN
DEFAULT_PORT = 29500  # torchrun's, when no job id is known


def _counts(runtime: Mapping[str, Any]) -> tuple[int, int, int]:
    return int(runtime.get("nodes", 1) or 1), int(runtime.get("gpus", 0) or 0), int(runtime.get("threads", 1) or 1)


def gpu_resources(runtime: Mapping[str, Any]) -> dict[str, int]:
    """A one-node model-running job's GPU resources: ``gpu`` (sbatch ``--gpus``) and CPUs per GPU, if any."""
    _, gpus, threads = _counts(runtime)
    return {"gpu": gpus, "cpus_per_gpu": threads} if gpus > 0 else {}


def inference_resources(params: Mapping[str, Any]) -> dict[str, int]:
    """A sampling, scoring, rollout or evaluation job's GPUs: those its engine computes on.

    vLLM spans ``vllm.tensor_parallel_size`` GPUs, the transformers backend one; at most
    ``runtime.gpus``, none when that is 0. (Holding ``runtime.gpus`` for an engine on one GPU, as
    these jobs once did, bills the idle ones: 8 held for 1 used on the Qwen3-4B preset.)
    """
    _, gpus, _ = _counts(params["runtime"])
    if gpus <= 0:
        return {}
    engine = params.get("vllm") or {}
    used = int(engine.get("tensor_parallel_size") or 1) if params["sampling"]["backend"] == "vllm" else 1
    return gpu_resources({**params["runtime"], "gpus": min(used, gpus)})


def train_launch(runtime: Mapping[str, Any]) -> str:
    """The command that training rules put before ``--params ...`` (``runtime`` of params.yaml).

    Without ``accelerate_config``: ``varreason``. With it, on one node: ``accelerate launch`` with one
    process per GPU (or the config's count on CPUs, with ``ACCELERATE_USE_CPU=true``). With
    ``nodes`` > 1: ``srun`` starting ``python -m varreason.launch`` once per node, ``--num_processes``
    being the total (nodes x GPUs, or one CPU process per node). Raises ValueError naming
    ``runtime.nodes`` when nodes > 1 without an accelerate config (nothing would start the other nodes).
    """
    nodes, gpus, threads = _counts(runtime)
    config = runtime.get("accelerate_config")
    if nodes < 1:
        raise ValueError(f"runtime.nodes is {nodes}; it must be at least 1")
    if not config:
        if nodes > 1:
            raise ValueError(
                f"runtime.nodes is {nodes}, but runtime.accelerate_config is not set: training on several "
                "nodes runs under accelerate launch (set e.g. workflow/accelerate/fsdp.yaml, or runtime.nodes: 1)"
            )
        return "varreason"
    cpu = "" if gpus else "ACCELERATE_USE_CPU=true "
    tail = f"--config_file {shlex.quote(str(config))}"
    if nodes == 1:
        return f"{cpu}accelerate launch {tail}" + (f" --num_processes {gpus}" if gpus else "") + " -m varreason.cli"
    per_node = gpus or 1
    srun = f"srun --nodes={nodes} --ntasks={nodes} --ntasks-per-node=1 --cpus-per-task={per_node * threads}"
    srun += f" --gres=gpu:{gpus}" if gpus else ""
    srun += " --mem=0 --kill-on-bad-exit=1"  # the job's memory on each node; one node failing stops all
    return f"{cpu}{srun} python -m varreason.launch {tail} --num_processes {nodes * per_node} -m varreason.cli"


def train_resources(runtime: Mapping[str, Any]) -> dict[str, int | str]:
    """A training job's resources beyond memory and minutes, in the SLURM executor plugin's names.

    One node: :func:`gpu_resources`. ``nodes`` > 1: ``nodes`` and ``tasks`` (sbatch ``--nodes=N
    --ntasks=N``: one task per node), ``mpi`` (the jobstep plugin then runs the command as it is,
    without its own ``srun``), ``cpus_per_task`` (CPUs of each node's launcher and its processes) and,
    with GPUs, ``gres=gpu:G`` (G per node; the plugin's ``gpu`` is ``--gpus``, a total over the job).
    ``tasks_per_gpu`` 0 stops the plugin from turning ``tasks`` into ``--ntasks-per-gpu``.
    """
    nodes, gpus, threads = _counts(runtime)
    if nodes <= 1:
        return gpu_resources(runtime)
    resources: dict[str, int | str] = {"nodes": nodes, "tasks": nodes, "mpi": "srun"}
    resources["cpus_per_task"] = (gpus or 1) * threads
    if gpus:
        resources |= {"gres": f"gpu:{gpus}", "tasks_per_gpu": 0}
    return resources


def first_host(nodelist: str) -> str:
    """The first host of a SLURM hostlist, as ``scontrol show hostnames LIST | head -n1`` prints it.

    ``gpu[07-09,12],cpu1`` -> ``gpu07``: the first item of the list with each bracket replaced by its
    first value (zero padding kept). Pure Python, so it needs no ``scontrol`` (nor its controller).
    """
    depth, end = 0, len(nodelist)
    for i, ch in enumerate(nodelist):
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            end = i
            break
    head = re.sub(r"\[([^\]]*)\]", lambda m: re.split(r"[,-]", m.group(1))[0], nodelist[:end].strip())
    if not head or "[" in head or "]" in head:
        raise ValueError(f"cannot read the first host of the SLURM node list {nodelist!r}")
    return head


def main_port(job_id: str | None) -> int:
    """The rendezvous port: derived from the SLURM job id, so jobs that share a first node differ."""
    return PORT_BASE + int(job_id) % PORT_SPAN if job_id and job_id.isdigit() else DEFAULT_PORT


def node_args(env: Mapping[str, str]) -> list[str]:
    """This node's ``accelerate launch`` options, read from the environment that ``srun`` gives a task.

    SLURM_NNODES (machines), SLURM_NODEID (this machine's rank), SLURM_STEP_NODELIST or else
    SLURM_JOB_NODELIST (its first host is the main process's address), SLURM_JOB_ID (the port).
    VARREASON_MAIN_ADDR and VARREASON_MAIN_PORT override the address and the port (another network
    interface, or the localhost test).
    """

    def need(name: str) -> str:
        if not env.get(name):
            raise ValueError(f"{name} is not set: run this under srun, one task per node (docs/slurm.md)")
        return env[name]

    machines, rank = int(need("SLURM_NNODES")), int(need("SLURM_NODEID"))
    if not 0 <= rank < machines:
        raise ValueError(f"SLURM_NODEID {rank} is not a rank of SLURM_NNODES {machines} machines")
    addr = env.get("VARREASON_MAIN_ADDR") or first_host(env.get("SLURM_STEP_NODELIST") or need("SLURM_JOB_NODELIST"))
    port = int(env.get("VARREASON_MAIN_PORT") or main_port(env.get("SLURM_JOB_ID")))
    machine = ["--num_machines", str(machines), "--machine_rank", str(rank)]
    return [
        *machine,
        "--main_process_ip",
        addr,
        "--main_process_port",
        str(port),
        "--rdzv_backend",
        "static",
        "--same_network",
    ]


def main(argv: list[str] | None = None) -> int:
    """``python -m varreason.launch ACCELERATE_LAUNCH_ARGS...``: exec accelerate launch for this node."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        extra = node_args(os.environ)
    except ValueError as e:
        print(f"python -m varreason.launch: {e}", file=sys.stderr)
        return 2
    cmd = [sys.executable, "-m", "accelerate.commands.launch", *extra, *argv]
    print(f"varreason.launch: machine {extra[3]} of {extra[1]}: {shlex.join(cmd)}", file=sys.stderr, flush=True)
    os.execv(sys.executable, cmd)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())

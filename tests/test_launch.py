"""What a training rule runs and asks SLURM for (src/varreason/launch.py), on one node and on several.

The SLURM side is checked against the installed executor plugins: the sbatch line they build from
the training resources, and that the jobstep plugin runs a multi-node job's command without its own
srun (the command starts one task per node itself). The training itself on 2 "machines" is
tests/test_accelerate_multiprocess.py.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from types import SimpleNamespace

import pytest

from varreason.launch import first_host, inference_resources, main_port, node_args, train_launch, train_resources

FSDP = "workflow/accelerate/fsdp.yaml"


def test_one_node_commands_are_unchanged():
    assert train_launch({"threads": 2, "gpus": 0, "accelerate_config": None}) == "varreason"
    assert train_launch({"threads": 2, "gpus": 4, "accelerate_config": None, "nodes": 1}) == "varreason"
    assert (
        train_launch({"threads": 1, "gpus": 0, "accelerate_config": "workflow/accelerate/cpu-2proc.yaml"})
        == "ACCELERATE_USE_CPU=true accelerate launch --config_file workflow/accelerate/cpu-2proc.yaml -m varreason.cli"
    )
    assert (
        train_launch({"threads": 1, "gpus": 8, "accelerate_config": FSDP, "nodes": 1})
        == f"accelerate launch --config_file {FSDP} --num_processes 8 -m varreason.cli"
    )
    assert train_resources({"threads": 3, "gpus": 8, "nodes": 1}) == {"gpu": 8, "cpus_per_gpu": 3}
    assert train_resources({"threads": 3, "gpus": 0}) == {}


def test_several_nodes_run_one_launcher_per_node():
    cmd = shlex.split(train_launch({"threads": 2, "gpus": 4, "accelerate_config": FSDP, "nodes": 3}))
    srun, rest = cmd[: cmd.index("python")], cmd[cmd.index("python") :]
    assert srun[0] == "srun"
    assert {"--nodes=3", "--ntasks=3", "--ntasks-per-node=1", "--cpus-per-task=8", "--gres=gpu:4"} <= set(srun)
    assert shlex.join(rest) == f"python -m varreason.launch --config_file {FSDP} --num_processes 12 -m varreason.cli"
    # no GPUs: one CPU process per node over gloo
    cpu = train_launch({"threads": 2, "gpus": 0, "accelerate_config": "c.yaml", "nodes": 2})
    assert cpu.startswith("ACCELERATE_USE_CPU=true srun --nodes=2 ")
    assert "--gres" not in cpu and cpu.endswith("--config_file c.yaml --num_processes 2 -m varreason.cli")


@pytest.mark.parametrize(
    ("gpus", "backend", "tensor_parallel", "want"),
    [(8, "vllm", 1, 1), (8, "vllm", 4, 4), (2, "vllm", 4, 2), (8, "hf", 4, 1), (0, "vllm", 4, None)],
)
def test_inference_jobs_hold_the_gpus_their_engine_uses(gpus, backend, tensor_parallel, want):
    params = {
        "runtime": {"gpus": gpus, "threads": 6, "nodes": 1},
        "sampling": {"backend": backend},
        "vllm": {"tensor_parallel_size": tensor_parallel},
    }
    assert inference_resources(params) == ({"gpu": want, "cpus_per_gpu": 6} if want else {})


def test_several_nodes_need_an_accelerate_config():
    with pytest.raises(ValueError, match=r"runtime\.nodes is 2, but runtime\.accelerate_config is not set"):
        train_launch({"threads": 1, "gpus": 4, "accelerate_config": None, "nodes": 2})


def test_several_nodes_ask_slurm_for_them():
    assert train_resources({"threads": 2, "gpus": 4, "nodes": 2}) == {
        "nodes": 2, "tasks": 2, "mpi": "srun", "cpus_per_task": 8, "gres": "gpu:4", "tasks_per_gpu": 0,
    }  # fmt: skip
    assert train_resources({"threads": 2, "gpus": 0, "nodes": 2}) == {
        "nodes": 2, "tasks": 2, "mpi": "srun", "cpus_per_task": 2,
    }  # fmt: skip


@pytest.mark.parametrize(
    "nodelist, host",
    [
        ("gpu[07-09,12],cpu1", "gpu07"),
        ("node001", "node001"),
        ("n[1-3],m[4]", "n1"),
        ("rack[2-3]-gpu[010-011]", "rack2-gpu010"),
        ("a1,b2", "a1"),
        ("127.0.0.1", "127.0.0.1"),
    ],
)
def test_first_host_of_a_slurm_node_list(nodelist, host):
    assert first_host(nodelist) == host


def test_first_host_refuses_what_it_cannot_read():
    for bad in ("", "gpu[07"):
        with pytest.raises(ValueError, match="first host"):
            first_host(bad)


def test_node_args_come_from_slurms_environment():
    env = {"SLURM_NNODES": "2", "SLURM_NODEID": "1", "SLURM_JOB_NODELIST": "gpu[04-05]", "SLURM_JOB_ID": "1234567"}
    args = node_args(env)
    assert args == [
        "--num_machines", "2", "--machine_rank", "1", "--main_process_ip", "gpu04",
        "--main_process_port", str(main_port("1234567")), "--rdzv_backend", "static", "--same_network",
    ]  # fmt: skip
    assert 20000 <= main_port("1234567") < 30000 and main_port("1234567") != main_port("1234568")
    assert main_port(None) == 29500
    # the step's node list wins over the job's; the overrides win over both
    assert "gpu09" in node_args({**env, "SLURM_STEP_NODELIST": "gpu[09-10]"})
    over = node_args({**env, "VARREASON_MAIN_ADDR": "10.0.0.7", "VARREASON_MAIN_PORT": "4242"})
    assert over[5] == "10.0.0.7" and over[7] == "4242"
    with pytest.raises(ValueError, match="SLURM_NODEID is not set"):
        node_args({k: v for k, v in env.items() if k != "SLURM_NODEID"})
    with pytest.raises(ValueError, match="not a rank"):
        node_args({**env, "SLURM_NODEID": "2"})


def test_launch_outside_srun_says_why():
    env = {"PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-m", "varreason.launch", "x.py"], env=env, capture_output=True, text=True)
    assert r.returncode == 2 and "SLURM_NNODES is not set: run this under srun" in r.stderr


class _Resources(dict):
    __getattr__ = dict.get


class _Job:
    """What the plugins read of a Snakemake job (hashable: the jobstep keys its steps by job)."""

    def __init__(self, resources: dict, threads: int = 2):
        self.resources, self.threads = _Resources(mem_mb=4000, runtime=60, **resources), threads

    def is_group(self) -> bool:
        return False


@pytest.mark.parametrize("gpus", [0, 4])
def test_the_slurm_plugin_submits_one_task_on_each_node(gpus):
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    job = _Job(train_resources({"threads": 2, "gpus": gpus, "nodes": 2}))
    params = dict(run_uuid="u", slurm_logfile="l", comment_str="c", account="", partition="", workdir="")
    call = get_submit_command(job, params) + set_gres_string(job)
    flags = call.split()
    assert {"--nodes=2", "--ntasks=2", f"--cpus-per-task={2 * (gpus or 1)}"} <= set(flags), call
    assert "--mem" in flags and not any(f.startswith(("--ntasks-per-gpu", "--gpus", "--cpus-per-gpu")) for f in flags)
    assert ("--gres=gpu:4" in flags) == (gpus == 4)


def test_the_jobstep_plugin_runs_a_multi_node_command_without_its_own_srun(monkeypatch):
    """With the `mpi` resource the jobstep runs the job as it is; without it, under `srun -n1` (one node)."""
    import snakemake_executor_plugin_slurm_jobstep as jobstep

    calls = []

    class _Popen:
        def __init__(self, call, **kwargs):
            calls.append(call)

        def wait(self):
            return 0

    monkeypatch.setattr(jobstep.subprocess, "Popen", _Popen)
    settings = SimpleNamespace(array_execs="", pass_command_as_script=False)
    executor = SimpleNamespace(
        job_array_task=False, gpu_job=None, workflow=SimpleNamespace(executor_settings=settings),
        format_job_exec=lambda job: "SNAKEMAKE-JOB", logger=SimpleNamespace(debug=lambda m: None, error=lambda m: None),
        report_job_submission=lambda info: None, report_job_success=lambda info: None,
        report_job_error=lambda info: None,
    )  # fmt: skip
    for runtime in ({"threads": 2, "gpus": 4, "nodes": 2}, {"threads": 2, "gpus": 4, "nodes": 1}):
        jobstep.Executor.run_job(executor, _Job(train_resources(runtime)))
    multi, single = calls
    assert multi == "SNAKEMAKE-JOB"
    assert single.startswith("srun -n1 ") and "--nodes=1" in single


def test_sigterm_reaches_the_jobs_of_the_snakemake_inside_a_slurm_job(monkeypatch):
    """The wrapper of Snakemake's SIGTERM handler: applied only in a SLURM job, and it signals the children."""
    import signal as signals
    import subprocess
    import sys

    from snakemake.scheduling import job_scheduler

    from varreason.slurm_signals import forward_sigterm_to_jobs

    original = job_scheduler.JobScheduler.exit_gracefully
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert not forward_sigterm_to_jobs() and job_scheduler.JobScheduler.exit_gracefully is original
    monkeypatch.setenv("SLURM_JOB_ID", "1")
    monkeypatch.setattr(job_scheduler.JobScheduler, "exit_gracefully", lambda self, *a: calls.append(a))
    calls: list = []
    assert forward_sigterm_to_jobs() and forward_sigterm_to_jobs()  # once, however often it is called
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        job_scheduler.JobScheduler.exit_gracefully(object(), signals.SIGTERM, None)
        assert child.wait(timeout=30) == -signals.SIGTERM
    finally:
        child.kill()
    assert calls == [(signals.SIGTERM, None)]  # then Snakemake's own handler

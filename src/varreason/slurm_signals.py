"""Pass SIGTERM on from the Snakemake inside a SLURM job to the job it runs.

SLURM signals a job step before its time limit (the profile's ``--signal=TERM@300``) and on
preemption. With ``ProctrackType=proctrack/cgroup`` (SLURM's recommended setting) only the step's
first process gets the signal: the Snakemake that runs the rule (``--executor slurm-jobstep`` ->
``srun`` -> ``snakemake``), not the ``varreason`` stage under it, which would then train on until
the hard kill without saving. Snakemake's own SIGTERM handler (``JobScheduler.exit_gracefully``)
waits for its running jobs; wrapped here, it first sends SIGTERM to its child processes, so the
stage checkpoints and exits with status 75, and Snakemake reports the failure for its retries.

This wraps a Snakemake internal: it is applied only inside a SLURM job, and if the internal is not
there (another Snakemake version) it says so and changes nothing.
"""

from __future__ import annotations

import os
import signal
import sys


def forward_sigterm_to_jobs() -> bool:
    """Inside a SLURM job: make Snakemake's SIGTERM handler signal its children first. True if applied."""
    if not os.environ.get("SLURM_JOB_ID"):
        return False
    try:
        import psutil
        from snakemake.scheduling import job_scheduler
    except ImportError:
        return False
    scheduler = getattr(job_scheduler, "JobScheduler", None)
    original = getattr(scheduler, "exit_gracefully", None)
    if original is None:
        print("varreason: cannot pass SIGTERM on to jobs (Snakemake's JobScheduler changed)", file=sys.stderr)
        return False
    if getattr(original, "forwards_sigterm", False):
        return True

    def exit_gracefully(self, *args):
        for child in psutil.Process().children():
            try:
                child.send_signal(signal.SIGTERM)
            except psutil.NoSuchProcess:
                pass
        return original(self, *args)

    exit_gracefully.forwards_sigterm = True
    scheduler.exit_gracefully = exit_gracefully
    return True

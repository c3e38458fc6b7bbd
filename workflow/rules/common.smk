# Helpers shared by the rules.


wildcard_constraints:
    estimator="|".join(P.ESTIMATORS),
    baseline="|".join(P.BASELINES),
    shard=r"\d+",


# `--config key=value` on the Snakemake command line reaches every stage as `--set` overrides,
# so the CLI (which reads params.yaml itself) runs with what Snakemake validated.
SET = "".join(f" --set {shlex.quote(o)}" for o in overrides_between(load_params_file("params.yaml"), config))


def shard_paths(pattern):
    return [pattern.format(shard=s) for s in SHARDS]


def heavy(mem_mb, runtime):
    """Resources of a model-running rule: memory, minutes, and GPUs (with CPUs per GPU) where configured."""
    return dict(mem_mb=mem_mb, runtime=runtime, **GPU)


def heavy_train(mem_mb, runtime):
    """Resources of a training rule: heavy()'s, with runtime.nodes > 1 on that many nodes (nodes, tasks, mpi,
    cpus_per_task, gres: train_resources in src/varreason/launch.py)."""
    return dict(mem_mb=mem_mb, runtime=runtime, **TRAIN_RESOURCES)


def stage_reads(command):
    """The params a rule's stage reads (the stage table, src/varreason/pipeline.py), with their values.

    Snakemake reruns a job when one of them changes; `varreason dvc-yaml` (src/varreason/dvcyaml.py)
    lists the same keys as the stage's `params` in dvc.yaml.
    """
    return params_of(*COMMANDS[command].reads)


def params_of(*keys):
    """The params.yaml values of these dotted keys."""
    values = {}
    for key in keys:
        value = config
        for part in key.split("."):
            value = value[part]
        values[key] = value
    return values


def rollout_inputs(wildcards):
    # only the Acc estimator needs rollouts
    return shard_paths(P.ROLLOUTS) if wildcards.estimator == "acc" else []


def baseline_samples(wildcards):
    # only RFT learns from pi_0's own samples
    return shard_paths(P.INITIAL_SAMPLES) if wildcards.baseline == "rft" else []

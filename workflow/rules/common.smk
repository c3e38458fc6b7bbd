# Helpers shared by the rules.


def shard_paths(pattern):
    return [pattern.format(shard=s) for s in SHARDS]


def heavy(mem_mb, runtime):
    """Resources of a model-running rule: memory, minutes, and a GPU where one is configured."""
    return dict(mem_mb=mem_mb, runtime=runtime, **GPU)


wildcard_constraints:
    estimator="|".join(P.ESTIMATORS),
    baseline="|".join(P.BASELINES),
    shard=r"\d+",


def rollout_inputs(wildcards):
    # only the Acc estimator needs rollouts
    return shard_paths(P.ROLLOUTS) if wildcards.estimator == "acc" else []


def baseline_samples(wildcards):
    # only RFT learns from pi_0's own samples
    return shard_paths(P.INITIAL_SAMPLES) if wildcards.baseline == "rft" else []

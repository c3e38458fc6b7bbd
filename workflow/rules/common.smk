# Helpers shared by the rules.


def shard_paths(pattern):
    return [pattern.format(shard=s) for s in SHARDS]


def heavy(mem_mb, runtime):
    """Resources of a model-running rule: memory, minutes, and a GPU where one is configured."""
    return dict(mem_mb=mem_mb, runtime=runtime, **GPU)

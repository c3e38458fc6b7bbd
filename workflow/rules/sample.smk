rule sample_posterior:
    input:
        train=P.PREPARED_TRAIN,
        posterior=P.POSTERIOR_MODEL,
    output:
        P.POSTERIOR_TRACES,
    params:
        set=SET,
        reads=stage_reads("sample-posterior"),
    threads: T
    resources:
        **heavy(4000, 60),
    log:
        "logs/sample_posterior-{shard}.log",
    benchmark:
        "benchmarks/sample_posterior-{shard}.tsv"
    shell:
        "varreason --params params.yaml{params.set} --threads {threads} --log {log} sample-posterior --train {input.train}"
        " --posterior {input.posterior} --shard {wildcards.shard} --out {output}"


rule score:
    input:
        traces=P.POSTERIOR_TRACES,
        initial=P.INITIAL_MODEL,
        posterior=P.POSTERIOR_MODEL,
    output:
        P.SCORED_TRACES,
    params:
        set=SET,
        reads=stage_reads("score"),
    threads: T
    resources:
        **heavy(4000, 60),
    log:
        "logs/score-{shard}.log",
    benchmark:
        "benchmarks/score-{shard}.tsv"
    shell:
        "varreason --params params.yaml{params.set} --threads {threads} --log {log} score --traces {input.traces}"
        " --initial {input.initial} --posterior {input.posterior} --out {output}"


rule rollout:
    input:
        traces=P.POSTERIOR_TRACES,
        initial=P.INITIAL_MODEL,
    output:
        P.ROLLOUTS,
    params:
        set=SET,
        reads=stage_reads("rollout"),
    threads: T
    resources:
        **heavy(4000, 60),
    log:
        "logs/rollout-{shard}.log",
    benchmark:
        "benchmarks/rollout-{shard}.tsv"
    shell:
        "varreason --params params.yaml{params.set} --threads {threads} --log {log} rollout --traces {input.traces}"
        " --initial {input.initial} --shard {wildcards.shard} --out {output}"

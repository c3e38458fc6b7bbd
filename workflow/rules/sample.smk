rule sample_posterior:
    input:
        train=P.PREPARED_TRAIN,
        posterior=P.POSTERIOR_MODEL,
    output:
        P.POSTERIOR_TRACES,
    params:
        seed=config["seed"],
        sampling=config["sampling"],
        templates=config["task"]["templates"],
    threads: T
    resources:
        **heavy(4000, 60),
    log:
        "logs/sample_posterior-{shard}.log",
    benchmark:
        "benchmarks/sample_posterior-{shard}.tsv"
    shell:
        "varreason --params params.yaml --threads {threads} sample-posterior --train {input.train} --posterior {input.posterior} --shard {wildcards.shard}"
        " --out {output} > {log} 2>&1"


rule score:
    input:
        traces=P.POSTERIOR_TRACES,
        initial=P.INITIAL_MODEL,
        posterior=P.POSTERIOR_MODEL,
    output:
        P.SCORED_TRACES,
    params:
        scoring=config["scoring"],
        templates=config["task"]["templates"],
    threads: T
    resources:
        **heavy(4000, 60),
    log:
        "logs/score-{shard}.log",
    benchmark:
        "benchmarks/score-{shard}.tsv"
    shell:
        "varreason --params params.yaml --threads {threads} score --traces {input.traces} --initial {input.initial} --posterior {input.posterior}"
        " --out {output} > {log} 2>&1"


rule rollout:
    input:
        traces=P.POSTERIOR_TRACES,
        initial=P.INITIAL_MODEL,
    output:
        P.ROLLOUTS,
    params:
        seed=config["seed"],
        rollout=config["rollout"],
        templates=config["task"]["templates"],
    threads: T
    resources:
        **heavy(4000, 60),
    log:
        "logs/rollout-{shard}.log",
    benchmark:
        "benchmarks/rollout-{shard}.tsv"
    shell:
        "varreason --params params.yaml --threads {threads} rollout --traces {input.traces} --initial {input.initial} --shard {wildcards.shard}"
        " --out {output} > {log} 2>&1"

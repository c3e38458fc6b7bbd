rule sample_initial:
    input:
        train=P.PREPARED_TRAIN,
        initial=P.INITIAL_MODEL,
    output:
        P.INITIAL_SAMPLES,
    params:
        seed=config["seed"],
        sampling=config["sampling"],
        max_answer_tokens=config["rollout"]["max_answer_tokens"],
        templates=config["task"]["templates"],
    threads: T
    resources:
        **heavy(4000, 60),
    log:
        "logs/sample_initial-{shard}.log",
    benchmark:
        "benchmarks/sample_initial-{shard}.tsv"
    shell:
        "varreason --params params.yaml --threads {threads} sample-initial --train {input.train} --initial {input.initial} --shard {wildcards.shard}"
        " --out {output} > {log} 2>&1"


rule baselines:
    input:
        train=P.PREPARED_TRAIN,
        initial=P.INITIAL_MODEL,
        samples=baseline_samples,
    output:
        final_set=P.BASELINE_SET,
        metrics=P.BASELINE_SET_METRICS,
        model=directory(P.BASELINE_MODEL),
    params:
        seed=config["seed"],
        train=config["train_final"],
        mix_original=config["select"]["mix_original"],
        task=config["task"],
        samples=lambda w, input: ("--samples " + " ".join(input.samples)) if input.samples else "",
    threads: T
    resources:
        **heavy(4000, 60),
    log:
        "logs/baselines-{baseline}.log",
    benchmark:
        "benchmarks/baselines-{baseline}.tsv"
    shell:
        "varreason --params params.yaml --threads {threads} baselines --kind {wildcards.baseline} --train {input.train} --initial {input.initial}"
        " {params.samples} --set-out {output.final_set} --set-metrics {output.metrics} --out {output.model}"
        " > {log} 2>&1"

rule sample_initial:
    input:
        train=P.PREPARED_TRAIN,
        initial=P.INITIAL_MODEL,
    output:
        P.INITIAL_SAMPLES,
    params:
        set=SET,
        reads=stage_reads("sample-initial"),
    threads: T
    resources:
        **heavy(4000, 60),
    log:
        "logs/sample_initial-{shard}.log",
    benchmark:
        "benchmarks/sample_initial-{shard}.tsv"
    shell:
        "varreason --params params.yaml{params.set} --threads {threads} --log {log} sample-initial --train {input.train}"
        " --initial {input.initial} --shard {wildcards.shard} --out {output}"


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
        launch=TRAIN,
        set=SET,
        reads=stage_reads("baselines"),
        samples=lambda w, input: f" --samples {' '.join(input.samples)}" if input.samples else "",
    threads: T
    resources:
        **heavy_train(4000, 60),
    log:
        "logs/baselines-{baseline}.log",
    benchmark:
        "benchmarks/baselines-{baseline}.tsv"
    shell:
        "{params.launch} --params params.yaml{params.set} --threads {threads} --log {log} baselines --kind {wildcards.baseline}"
        " --train {input.train} --initial {input.initial}{params.samples} --set-out {output.final_set}"
        " --set-metrics {output.metrics} --out {output.model}"

rule train_initial:
    input:
        train=P.PREPARED_TRAIN,
    output:
        directory(P.INITIAL_MODEL),
    params:
        launch=TRAIN,
        set=SET,
        reads=stage_reads("train-initial"),
    threads: T
    resources:
        **heavy(4000, 60),
    log:
        "logs/train_initial.log",
    benchmark:
        "benchmarks/train_initial.tsv"
    shell:
        "{params.launch} --params params.yaml{params.set} --threads {threads} --log {log} train-initial --train {input.train}"
        " --out {output}"


rule train_posterior:
    input:
        train=P.PREPARED_TRAIN,
        initial=P.INITIAL_MODEL,
    output:
        directory(P.POSTERIOR_MODEL),
    params:
        launch=TRAIN,
        set=SET,
        reads=stage_reads("train-posterior"),
    threads: T
    resources:
        **heavy(4000, 60),
    log:
        "logs/train_posterior.log",
    benchmark:
        "benchmarks/train_posterior.tsv"
    shell:
        "{params.launch} --params params.yaml{params.set} --threads {threads} --log {log} train-posterior --train {input.train}"
        " --initial {input.initial} --out {output}"


rule train_final:
    input:
        final_set=P.FINAL_SET,
        initial=P.INITIAL_MODEL,
    output:
        directory(P.FINAL_MODEL),
    params:
        launch=TRAIN,
        set=SET,
        reads=stage_reads("train-final"),
    threads: T
    resources:
        **heavy(4000, 60),
    log:
        "logs/train_final-{estimator}.log",
    benchmark:
        "benchmarks/train_final-{estimator}.tsv"
    shell:
        "{params.launch} --params params.yaml{params.set} --threads {threads} --log {log} train-final --estimator {wildcards.estimator}"
        " --final-set {input.final_set} --initial {input.initial} --out {output}"

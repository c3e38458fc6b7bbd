# A .gguf model.pretrained is imported once into a checkpoint directory the training rules start from.
GGUF = P.is_gguf(config["model"]["pretrained"])
BASE = {"base": P.BASE_MODEL} if GGUF else {}
BASE_FLAG = f" --base {P.BASE_MODEL}" if GGUF else ""

if GGUF:

    rule import_model:
        input:
            config["model"]["pretrained"],
        output:
            directory(P.BASE_MODEL),
        params:
            set=SET,
            reads=stage_reads("import-model"),
        resources:
            mem_mb=4000,
            runtime=20,
        log:
            "logs/import_model.log",
        shell:
            "varreason --params params.yaml{params.set} --log {log} import-model --out {output}"


rule train_initial:
    input:
        train=P.PREPARED_TRAIN,
        **BASE,
    output:
        directory(P.INITIAL_MODEL),
    params:
        launch=TRAIN,
        set=SET,
        reads=stage_reads("train-initial"),
        base=BASE_FLAG,
    threads: T
    resources:
        **heavy_train(4000, 60),
    log:
        "logs/train_initial.log",
    benchmark:
        "benchmarks/train_initial.tsv"
    shell:
        "{params.launch} --params params.yaml{params.set} --threads {threads} --log {log} train-initial --train {input.train}"
        "{params.base} --out {output}"


rule train_posterior:
    input:
        train=P.PREPARED_TRAIN,
        initial=P.INITIAL_MODEL,
        **BASE,
    output:
        directory(P.POSTERIOR_MODEL),
    params:
        launch=TRAIN,
        set=SET,
        reads=stage_reads("train-posterior"),
        base=BASE_FLAG,
    threads: T
    resources:
        **heavy_train(4000, 60),
    log:
        "logs/train_posterior.log",
    benchmark:
        "benchmarks/train_posterior.tsv"
    shell:
        "{params.launch} --params params.yaml{params.set} --threads {threads} --log {log} train-posterior --train {input.train}"
        " --initial {input.initial}{params.base} --out {output}"


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
        **heavy_train(4000, 60),
    log:
        "logs/train_final-{estimator}.log",
    benchmark:
        "benchmarks/train_final-{estimator}.tsv"
    shell:
        "{params.launch} --params params.yaml{params.set} --threads {threads} --log {log} train-final --estimator {wildcards.estimator}"
        " --final-set {input.final_set} --initial {input.initial} --out {output}"

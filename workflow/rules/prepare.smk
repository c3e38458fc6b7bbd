rule prepare:
    output:
        train=P.PREPARED_TRAIN,
        test=P.PREPARED_TEST,
    params:
        set=SET,
        reads=stage_reads("prepare"),
    log:
        "logs/prepare.log",
    shell:
        "varreason --params params.yaml{params.set} --log {log} prepare --train-out {output.train} --test-out {output.test}"

rule prepare:
    output:
        train=P.PREPARED_TRAIN,
        test=P.PREPARED_TEST,
    params:
        reads=params_of("seed", "task"),
    log:
        "logs/prepare.log",
    shell:
        "varreason --params params.yaml --log {log} prepare --train-out {output.train} --test-out {output.test}"

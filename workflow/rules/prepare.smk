rule prepare:
    output:
        train=P.PREPARED_TRAIN,
        test=P.PREPARED_TEST,
    params:
        seed=config["seed"],
        task=config["task"],
    log:
        "logs/prepare.log",
    shell:
        "varreason --params params.yaml prepare --train-out {output.train} --test-out {output.test} > {log} 2>&1"

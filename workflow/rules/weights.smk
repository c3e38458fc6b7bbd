rule weights:
    input:
        scored=shard_paths(P.SCORED_TRACES),
        rollouts=rollout_inputs,
    output:
        weights=P.WEIGHTED_TRACES,
        metrics=P.WEIGHT_METRICS,
    params:
        set=SET,
        reads=stage_reads("weights"),
        # with its leading space, so the command has no double space when there is none
        rollouts=lambda w, input: f" --rollouts {' '.join(input.rollouts)}" if input.rollouts else "",
    log:
        "logs/weights-{estimator}.log",
    shell:
        "varreason --params params.yaml{params.set} --log {log} weights --estimator {wildcards.estimator} --scored {input.scored}"
        "{params.rollouts} --out {output.weights} --metrics {output.metrics}"


rule build_final:
    input:
        weights=P.WEIGHTED_TRACES,
        train=P.PREPARED_TRAIN,
        initial=P.INITIAL_MODEL,
    output:
        final_set=P.FINAL_SET,
        metrics=P.FINAL_SET_METRICS,
    params:
        set=SET,
        reads=stage_reads("build-final"),
    log:
        "logs/build_final-{estimator}.log",
    shell:
        "varreason --params params.yaml{params.set} --log {log} build-final --estimator {wildcards.estimator}"
        " --weights {input.weights} --train {input.train} --initial {input.initial} --out {output.final_set}"
        " --metrics {output.metrics}"

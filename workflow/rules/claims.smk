# The claims run (`snakemake claims`): the arms of the pre-registered plan (params claims.plan) on
# the seeds it gives each, then one report. Arms and layout: src/varreason/claims.py; helpers:
# claims_common.smk.


use rule prepare as claims_prepare with:
    output:
        train=cp(P.PREPARED_TRAIN),
        test=cp(P.PREPARED_TEST),
    params:
        set=seed_set,
    log:
        cp("logs/prepare.log"),


use rule train_initial as claims_train_initial with:
    input:
        train=cp(P.PREPARED_TRAIN),
    output:
        directory(cp(P.INITIAL_MODEL)),
    params:
        set=seed_set,
    log:
        cp("logs/train_initial.log"),
    benchmark:
        cp("benchmarks/train_initial.tsv")


use rule train_posterior as claims_train_posterior with:
    input:
        train=cp(P.PREPARED_TRAIN),
        initial=cp(P.INITIAL_MODEL),
    output:
        directory(cp(P.POSTERIOR_MODEL)),
    params:
        set=seed_set,
    log:
        cp("logs/train_posterior.log"),
    benchmark:
        cp("benchmarks/train_posterior.tsv")


use rule sample_posterior as claims_sample with:
    input:
        train=cp(P.PREPARED_TRAIN),
        posterior=proposal_dir,
    output:
        VC.SAMPLES,
    params:
        set=lambda w: claim_set(w, *(["sampling.hint=false"] if w.source == "nohint" else [])),
    log:
        cp("logs/sample-{source}-{shard}.log"),
    benchmark:
        cp("benchmarks/sample-{source}-{shard}.tsv")


use rule score as claims_score with:
    input:
        traces=VC.SAMPLES,
        initial=cp(P.INITIAL_MODEL),
        posterior=proposal_dir,
    output:
        VC.SCORED,
    params:
        set=seed_set,
    log:
        cp("logs/score-{source}-{shard}.log"),
    benchmark:
        cp("benchmarks/score-{source}-{shard}.tsv")


use rule rollout as claims_rollout with:
    input:
        traces=VC.SAMPLES.replace("{source}", "posterior"),
        initial=cp(P.INITIAL_MODEL),
    output:
        cp(P.ROLLOUTS),
    params:
        set=seed_set,
    log:
        cp("logs/rollout-{shard}.log"),
    benchmark:
        cp("benchmarks/rollout-{shard}.tsv")


use rule sample_initial as claims_sample_initial with:
    input:
        train=cp(P.PREPARED_TRAIN),
        initial=cp(P.INITIAL_MODEL),
    output:
        cp(P.INITIAL_SAMPLES),
    params:
        set=seed_set,
    log:
        cp("logs/sample_initial-{shard}.log"),
    benchmark:
        cp("benchmarks/sample_initial-{shard}.tsv")


use rule sample_initial as claims_sample_initial_k with:
    input:
        train=cp(P.PREPARED_TRAIN),
        initial=cp(P.INITIAL_MODEL),
    output:
        VC.INITIAL_K_SAMPLES,
    params:
        set=lambda w: claim_set(w, f"sampling.k={w.k}"),
    log:
        cp("logs/sample_initial-k{k}-{shard}.log"),
    benchmark:
        cp("benchmarks/sample_initial-k{k}-{shard}.tsv")


rule claims_weights:
    input:
        unpack(variant_inputs),
    output:
        weights=VC.WEIGHTS,
        metrics=VC.WEIGHT_METRICS,
    params:
        set=lambda w: claim_set(w, *VC.VARIANTS[w.variant].sets),
        estimator=lambda w: VC.VARIANTS[w.variant].estimator,
        rollouts=lambda w, input: f" --rollouts {' '.join(input.rollouts)}" if input.rollouts else "",
        reads=stage_reads("weights"),
    log:
        cp("logs/weights-{variant}.log"),
    shell:
        "varreason --params params.yaml{params.set} --log {log} weights --estimator {params.estimator}"
        " --scored {input.scored}{params.rollouts} --out {output.weights} --metrics {output.metrics}"


rule claims_update_posterior:
    input:
        weights=VC.WEIGHTS.replace("{variant}", "gml"),
        posterior=cp(P.POSTERIOR_MODEL),
    output:
        directory(VC.ROUND2_POSTERIOR),
    params:
        launch=TRAIN,
        set=seed_set,
        reads=stage_reads("update-posterior"),
    threads: T
    resources:
        **heavy_train(4000, 60),
    log:
        cp("logs/update_posterior.log"),
    benchmark:
        cp("benchmarks/update_posterior.tsv")
    shell:
        "{params.launch} --params params.yaml{params.set} --threads {threads} --log {log} update-posterior"
        " --weights {input.weights} --posterior {input.posterior} --out {output}"


rule claims_build:
    input:
        weights=lambda w: VC.WEIGHTS.format(seed=w.seed, variant=VC.ARMS[w.arm].variant),
        train=cp(P.PREPARED_TRAIN),
        initial=cp(P.INITIAL_MODEL),
    output:
        final_set=VC.ARM_SET,
        metrics=VC.ARM_SET_METRICS,
    params:
        set=lambda w: claim_set(w, *VC.ARMS[w.arm].sets),
        estimator=lambda w: VC.VARIANTS[VC.ARMS[w.arm].variant].estimator,
        reads=stage_reads("build-final"),
    wildcard_constraints:
        arm="|".join(VR_ARMS),
    log:
        cp("logs/build-{arm}.log"),
    shell:
        "varreason --params params.yaml{params.set} --log {log} build-final --estimator {params.estimator}"
        " --weights {input.weights} --train {input.train} --initial {input.initial} --out {output.final_set}"
        " --metrics {output.metrics}"


rule claims_train:
    input:
        final_set=VC.ARM_SET,
        initial=cp(P.INITIAL_MODEL),
    output:
        directory(VC.ARM_MODEL),
    params:
        launch=TRAIN,
        set=seed_set,
        reads=stage_reads("train-final"),
    wildcard_constraints:
        arm="|".join(VR_ARMS),
    threads: T
    resources:
        **heavy_train(4000, 60),
    log:
        cp("logs/train-{arm}.log"),
    benchmark:
        cp("benchmarks/train-{arm}.tsv")
    shell:
        "{params.launch} --params params.yaml{params.set} --threads {threads} --log {log} train-final --estimator gml"
        " --final-set {input.final_set} --initial {input.initial} --out {output}"


rule claims_baseline:
    input:
        train=cp(P.PREPARED_TRAIN),
        initial=cp(P.INITIAL_MODEL),
        samples=baseline_samples,
    output:
        final_set=VC.ARM_SET,
        metrics=VC.ARM_SET_METRICS,
        model=directory(VC.ARM_MODEL),
    params:
        launch=TRAIN,
        set=lambda w: claim_set(w, *VC.ARMS[w.arm].sets),
        kind=lambda w: VC.ARMS[w.arm].baseline,
        samples=lambda w, input: f" --samples {' '.join(input.samples)}" if input.samples else "",
        reads=stage_reads("baselines"),
    wildcard_constraints:
        arm="|".join(BASELINE_ARMS),
    threads: T
    resources:
        **heavy_train(4000, 60),
    log:
        cp("logs/baseline-{arm}.log"),
    benchmark:
        cp("benchmarks/baseline-{arm}.tsv")
    shell:
        "{params.launch} --params params.yaml{params.set} --threads {threads} --log {log} baselines --kind {params.kind}"
        " --train {input.train} --initial {input.initial}{params.samples} --set-out {output.final_set}"
        " --set-metrics {output.metrics} --out {output.model}"


use rule evaluate as claims_evaluate with:
    input:
        model=lambda w: (cp(P.INITIAL_MODEL) if w.model == "initial" else VC.ARM_MODEL).format(
            seed=w.seed, arm=w.model
        ),
        test=cp(P.PREPARED_TEST),
    output:
        samples=VC.EVAL_SAMPLES,
        metrics=VC.EVAL_METRICS,
    params:
        set=seed_set,
    wildcard_constraints:
        model="|".join(VC.MODELS),
    log:
        cp("logs/evaluate-{model}.log"),
    benchmark:
        cp("benchmarks/evaluate-{model}.tsv")


rule claims_report:
    input:
        unpack(report_inputs),
    output:
        json=VC.REPORT_JSON,
        page=VC.REPORT_PAGE,
    params:
        reads=stage_reads("claims-report"),
    log:
        VC.REPORT_LOG,
    shell:
        "varreason --params params.yaml --log {log} claims-report --plan {input.plan}"
        " --json {output.json} --page {output.page}"

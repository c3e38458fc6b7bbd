rule evaluate:
    input:
        model=lambda w: P.EVAL_MODELS[w.model],
        test=P.PREPARED_TEST,
    output:
        samples=P.EVAL_SAMPLES,
        metrics=P.EVAL_METRICS,
    params:
        set=SET,
        reads=stage_reads("evaluate"),
    wildcard_constraints:
        model="|".join(P.EVAL_MODELS),
    threads: T
    resources:
        **heavy(4000, 60),
    log:
        "logs/evaluate-{model}.log",
    benchmark:
        "benchmarks/evaluate-{model}.tsv"
    shell:
        "varreason --params params.yaml{params.set} --threads {threads} --log {log} evaluate --name {wildcards.model}"
        " --model {input.model} --test {input.test} --out {output.samples} --metrics {output.metrics}"


rule evaluate_benchmark:
    input:
        model=lambda w: P.EVAL_MODELS[w.model],
    output:
        samples=P.BENCH_SAMPLES,
        metrics=P.BENCH_METRICS,
    params:
        set=SET,
        reads=stage_reads("evaluate-benchmark"),
    wildcard_constraints:
        model="|".join(P.EVAL_MODELS),
        benchmark="|".join(BENCHMARKS) or "NONE",
    threads: T
    resources:
        **heavy(8000, 240),
    log:
        "logs/evaluate-{model}-{benchmark}.log",
    benchmark:
        "benchmarks/evaluate-{model}-{benchmark}.tsv"
    shell:
        "varreason --params params.yaml{params.set} --threads {threads} --log {log} evaluate-benchmark"
        " --name {wildcards.model} --benchmark {wildcards.benchmark} --model {input.model}"
        " --out {output.samples} --metrics {output.metrics}"


# `snakemake --report report.zip` (or .html): the report page, each of its plots, the workflow's description.
report: "../report/workflow.rst"


rule report:
    input:
        evals=expand(P.EVAL_METRICS, model=list(P.EVAL_MODELS)),
        bench=expand(P.BENCH_METRICS, model=list(P.EVAL_MODELS), benchmark=BENCHMARKS),
        weights=expand(P.WEIGHT_METRICS, estimator=P.ESTIMATORS),
        sets=expand(P.FINAL_SET_METRICS, estimator=P.ESTIMATORS)
        + expand(P.BASELINE_SET_METRICS, baseline=P.BASELINES),
        # what the report page draws: weights tables, pi_0's own samples, per-sample evals, training logs;
        # its plots (data and drawings) go to the CLI's default folder, P.REPORT_PLOTS_DIR
        traces=expand(P.WEIGHTED_TRACES, estimator=P.ESTIMATORS),
        initial_samples=shard_paths(P.INITIAL_SAMPLES),
        eval_samples=expand(P.EVAL_SAMPLES, model=list(P.EVAL_MODELS)),
        models=[P.POSTERIOR_MODEL, *P.EVAL_MODELS.values()],
    output:
        summary=P.SUMMARY,
        page=P.REPORT_PAGE,
        accuracy_plot=P.ACCURACY_PLOT,
        iwae_plot=P.IWAE_PLOT,
        html=report(P.REPORT_HTML, caption="../report/captions/page.rst", category="Report page"),
        plot_data=expand(P.PAGE_PLOT_DATA, plot=P.PAGE_PLOTS),
        plot_images=[
            report(P.PAGE_PLOT_IMAGE.format(plot=p), caption=f"../report/captions/{p}.rst", category="Plots")
            for p in P.PAGE_PLOTS
        ],
    params:
        set=SET,
        reads=stage_reads("report"),
    log:
        "logs/report.log",
    shell:
        "varreason --params params.yaml{params.set} --log {log} report --summary {output.summary} --page {output.page}"
        " --accuracy-plot {output.accuracy_plot} --iwae-plot {output.iwae_plot} --html {output.html}"

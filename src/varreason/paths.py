"""Where every artifact lives. The Snakefile and the CLI defaults both read these names."""

PREPARED_TRAIN = "data/prepared/train.parquet"
PREPARED_TEST = "data/prepared/test.parquet"
INITIAL_MODEL = "data/models/initial"
POSTERIOR_MODEL = "data/models/posterior"
POSTERIOR_TRACES = "data/traces/posterior/shard-{shard}.parquet"
SCORED_TRACES = "data/traces/scored/shard-{shard}.parquet"
ROLLOUTS = "data/traces/rollouts/shard-{shard}.parquet"
INITIAL_SAMPLES = "data/traces/initial/shard-{shard}.parquet"
WEIGHTED_TRACES = "data/traces/weighted-{estimator}.parquet"
WEIGHT_METRICS = "metrics/weights-{estimator}.json"
FINAL_SET = "data/train/final-{estimator}.parquet"
FINAL_SET_METRICS = "metrics/train-set-vr-{estimator}.json"
FINAL_MODEL = "data/models/final-{estimator}"
BASELINE_SET = "data/train/baseline-{baseline}.parquet"
BASELINE_SET_METRICS = "metrics/train-set-{baseline}.json"
BASELINE_MODEL = "data/models/baseline-{baseline}"
EVAL_SAMPLES = "data/eval/{model}.parquet"
EVAL_METRICS = "metrics/eval/{model}.json"
BENCH_SAMPLES = "data/eval/benchmarks/{model}/{benchmark}.parquet"
BENCH_METRICS = "metrics/benchmarks/{model}/{benchmark}.json"
SUMMARY = "metrics/summary.json"
REPORT_PAGE = "reports/summary.md"
ACCURACY_PLOT = "reports/plots/accuracy.csv"
IWAE_PLOT = "reports/plots/iwae_by_k.csv"

ESTIMATORS = ("gml", "acc")
BASELINES = ("sft", "rft")
# evaluated model name -> checkpoint directory
EVAL_MODELS = {
    "initial": INITIAL_MODEL,
    "sft": BASELINE_MODEL.format(baseline="sft"),
    "rft": BASELINE_MODEL.format(baseline="rft"),
    "vr-gml": FINAL_MODEL.format(estimator="gml"),
    "vr-acc": FINAL_MODEL.format(estimator="acc"),
}


def shards(pattern: str, n: int) -> list[str]:
    return [pattern.format(shard=s) for s in range(n)]

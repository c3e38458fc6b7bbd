"""Where every artifact lives. The Snakefile and the CLI defaults both read these names."""

import re

PREPARED_TRAIN = "data/prepared/train.parquet"
PREPARED_TEST = "data/prepared/test.parquet"
# model.pretrained as a .gguf file is imported once into this checkpoint directory (stage import-model)
BASE_MODEL = "data/models/base"
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
TRAIN_LOG = "train_log.json"  # inside every trained model's directory: the loss history
# the weight files a saved checkpoint has (one of them): safetensors, sharded or not, or the older .bin
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
EVAL_SAMPLES = "data/eval/{model}.parquet"
EVAL_METRICS = "metrics/eval/{model}.json"
BENCH_SAMPLES = "data/eval/benchmarks/{model}/{benchmark}.parquet"
BENCH_METRICS = "metrics/benchmarks/{model}/{benchmark}.json"
SUMMARY = "metrics/summary.json"
REPORT_PAGE = "reports/summary.md"
ACCURACY_PLOT = "reports/plots/accuracy.csv"
IWAE_PLOT = "reports/plots/iwae_by_k.csv"
# The report page (one self-contained HTML file) and its plots: each plot's data is a CSV (a DVC
# plot in dvc.yaml) and its drawing a PNG beside it, embedded in the page.
REPORT_HTML = "reports/report.html"
REPORT_PLOTS_DIR = "reports/plots"
PAGE_PLOTS = ("log_weights", "ess", "accuracy_by_bin", "implicit_weights", "loss")
PAGE_PLOT_DATA = REPORT_PLOTS_DIR + "/{plot}.csv"
PAGE_PLOT_IMAGE = REPORT_PLOTS_DIR + "/{plot}.png"

ESTIMATORS = ("gml", "acc")
BASELINES = ("sft", "rft")  # the main run's
BASELINE_KINDS = (*BASELINES, "oracle", "grpo")  # and those the claims run adds (stages/build.py)
# evaluated model name -> checkpoint directory
EVAL_MODELS = {
    "initial": INITIAL_MODEL,
    "sft": BASELINE_MODEL.format(baseline="sft"),
    "rft": BASELINE_MODEL.format(baseline="rft"),
    "vr-gml": FINAL_MODEL.format(estimator="gml"),
    "vr-acc": FINAL_MODEL.format(estimator="acc"),
}


def is_gguf(pretrained: str | None) -> bool:
    """Whether ``model.pretrained`` names a GGUF file (imported by stage import-model), not a checkpoint."""
    return bool(pretrained) and str(pretrained).lower().endswith(".gguf")


def base_model(pretrained: str | None) -> str | None:
    """The checkpoint a run starts from: the imported GGUF (BASE_MODEL), the named one, or None (tiny model)."""
    return BASE_MODEL if is_gguf(pretrained) else pretrained


def model_name(model: str | None) -> str | None:
    """The name an outside checkpoint is evaluated under: its folder's or hub id's last part."""
    return str(model).rstrip("/").rsplit("/", 1)[-1] if model else None


def shards(pattern: str, n: int) -> list[str]:
    return [pattern.format(shard=s) for s in range(n)]


def pattern_regex(pattern: str) -> re.Pattern:
    """A regex that finds a path of ``pattern`` at the end of a path (``/run/`` + it, or it alone);
    each ``{wildcard}`` is a named group of one path component, and group ``path`` is the whole match."""
    body = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(pattern))
    return re.compile(rf"(?:^|/)(?P<path>{body})$")

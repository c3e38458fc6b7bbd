"""Stage ``report``: one table of every model's held-out numbers, the weight diagnostics, and a page.

``report`` writes ``metrics/summary.json`` and a markdown page ``reports/summary.md``, and returns
the table so the CLI prints it when the run ends. ``report_html`` writes the report page
``reports/report.html`` (one self-contained file, varreason/report_page.py) with the same tables,
the plots of the log-weights, ESS, accuracy by difficulty bin, the implicit weighting of RFT and
GRPO against VR's selection, the training losses, and example traces per difficulty bin; each
plot's data is a CSV and its drawing a PNG under ``reports/plots/``.

Difficulty bins (varreason/stats.py) are pi_0's own accuracy on a question: over its samples of the
training questions (sample_initial) for the weighting and the examples, over its sampled answers
(avg@n, data/eval/initial.parquet) for the test questions.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from varreason import paths as P
from varreason import report_page as RP
from varreason.corpus import own_accuracy, per_question
from varreason.io import InputError, read_parquet, write_json, write_text
from varreason.report_benchmarks import (
    ORDER,
    benchmarks_html,
    benchmarks_markdown,
    load_benchmark_metrics,
    metric_columns,
)
from varreason.traces import load_corpus


def _csv(rows: list[dict]) -> str:
    if not rows:
        return ""
    lines = [",".join(rows[0])] + [",".join(str(v) for v in r.values()) for r in rows]
    return "\n".join(lines) + "\n"


def _fmt(x, digits: int = 2, pct: bool = False) -> str:
    if x is None:
        return "-"
    return f"{100 * x:.0f}%" if pct else f"{x:.{digits}f}"


def _load(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


LABELS = {"greedy_trace_valid": "greedy trace valid", "greedy_trace_steps": "steps", "train_examples": "train examples"}


def results_table(models: dict[str, dict], sets: dict[str, dict]) -> tuple[list[str], list[list[str]], list[str]]:
    """The held-out table: header, one row of formatted cells per model, and the metric key of each column.

    The markdown page and the HTML page both show these cells.
    """
    names = [n for n in ORDER if n in models] + sorted(set(models) - set(ORDER))
    first = models[names[0]]
    cols = metric_columns(first)
    extra = [c for c in ("greedy_trace_valid", "greedy_trace_steps") if c in first]
    keys = ["model", *cols, *extra, "train_examples"]
    rows = []
    for n in names:
        m = models[n]
        cells = [f"{100 * m[c]:.1f}" for c in cols]
        cells[0] += f" ± {100 * m['greedy_acc_se']:.1f}"
        cells += [f"{100 * m[c]:.1f}" if c == "greedy_trace_valid" else f"{m[c]:.2f}" for c in extra]
        cells.append(str(sets.get(n, {}).get("n_examples", "-")))
        rows.append([n, *cells])
    return [LABELS.get(c, c) for c in keys], rows, keys


def weights_table(weights: dict[str, dict], sets: dict[str, dict]) -> tuple[list[str], list[list[str]]]:
    """The importance-weight diagnostics, one row of formatted cells per estimator."""
    header = [
        "estimator",
        "ESS/K",
        "median top weight",
        "mean log-ratio",
        "mean log pi(Y|x,z)",
        "questions with weight",
        "selected",
        "selected valid",
    ]
    rows = []
    for est, w in weights.items():
        s = sets.get(f"vr-{est}", {})
        rows.append(
            [
                est,
                _fmt(w["ess_over_k_mean"]),
                _fmt(w["top_weight_median"]),
                _fmt(w["log_ratio_mean"], 3),
                _fmt(w["log_likelihood_mean"], 3),
                _fmt(w["questions_with_any_weight"], pct=True),
                str(s.get("n_selected", "-")),
                _fmt(s.get("selected_valid_frac"), pct=True),
            ]
        )
    return header, rows


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def load_metrics(eval_metrics, weight_metrics, set_metrics) -> tuple[dict, dict, dict]:
    """Every model's eval metrics, every estimator's weight metrics and every training set's metrics."""
    return (
        {name: _load(p) for name, p in eval_metrics.items()},
        {name: _load(p) for name, p in weight_metrics.items()},
        {name: _load(p) for name, p in set_metrics.items()},
    )


def report(
    eval_metrics: dict[str, str | Path],
    weight_metrics: dict[str, str | Path],
    set_metrics: dict[str, str | Path],
    summary_out: str | Path,
    page_out: str | Path,
    accuracy_plot: str | Path | None = None,
    iwae_plot: str | Path | None = None,
    bench_metrics: dict[str, dict[str, str | Path]] | None = None,
) -> str:
    """The held-out table, the weights table and (``bench_metrics``: benchmark -> model -> file) the
    benchmark tables, into ``summary_out`` (JSON) and ``page_out`` (markdown); returns the page."""
    models, weights, sets = load_metrics(eval_metrics, weight_metrics, set_metrics)
    bench = load_benchmark_metrics(bench_metrics or {})
    header, rows, _ = results_table(models, sets)
    n_q = next(iter(models.values()))["n_questions"]
    page = (
        "# varreason results\n\n"
        f"Held-out accuracy in % on {n_q} questions (± one standard error of the greedy accuracy).\n\n"
        f"{_markdown(header, rows)}\n\n## Importance weights\n\n{_markdown(*weights_table(weights, sets))}\n"
    )
    if bench:
        page += "\n" + benchmarks_markdown(bench)
    if accuracy_plot:
        cols = metric_columns(models[rows[0][0]])
        write_text(_csv([{"model": r[0], **{c: models[r[0]][c] for c in cols}} for r in rows]), accuracy_plot)
    if iwae_plot:
        iwae = [
            {"estimator": est, "k": int(k), "iwae_bound": b}
            for est, w in weights.items()
            for k, b in w.get("iwae_bound_by_k", {}).items()
        ]
        write_text(_csv(iwae), iwae_plot)
    write_json({"models": models, "weights": weights, "training_sets": sets, "benchmarks": bench}, summary_out)
    write_text(page, page_out)
    return page


def run_report(
    params: dict,
    summary: str | Path,
    page: str | Path,
    accuracy_plot: str | Path,
    iwae_plot: str | Path,
    html: str | Path,
    plots: str | Path,
) -> str:
    """The stage: the run's metrics (read at their DAG paths) into the table and page, then the HTML
    page (``html`` '' skips it). Returns the page, which the CLI prints. Defaults: the stage table."""
    metrics = (
        {n: P.EVAL_METRICS.format(model=n) for n in P.EVAL_MODELS},
        {e: P.WEIGHT_METRICS.format(estimator=e) for e in P.ESTIMATORS},
        {
            **{f"vr-{e}": P.FINAL_SET_METRICS.format(estimator=e) for e in P.ESTIMATORS},
            **{b: P.BASELINE_SET_METRICS.format(baseline=b) for b in P.BASELINES},
        },
    )
    bench = {
        b: {n: P.BENCH_METRICS.format(model=n, benchmark=b) for n in P.EVAL_MODELS}
        for b in params["evaluate"]["benchmarks"]
    }
    text = report(*metrics, summary, page, accuracy_plot, iwae_plot, bench)
    if html:
        report_html(
            params,
            *metrics,
            bench_metrics=bench,
            corpora={e: P.WEIGHTED_TRACES.format(estimator=e) for e in P.ESTIMATORS},
            initial_samples=P.shards(P.INITIAL_SAMPLES, params["sampling"]["shards"]),
            eval_samples={n: P.EVAL_SAMPLES.format(model=n) for n in P.EVAL_MODELS},
            model_dirs={"initial": P.INITIAL_MODEL, "posterior": P.POSTERIOR_MODEL, **P.EVAL_MODELS},
            html_out=html,
            plots_dir=plots,
        )
    return text


def _plot(name: str, data, png: bytes, plots_dir: Path, caption: str) -> str:
    """Write one plot's data (CSV) and drawing (PNG); return its figure for the page."""
    # NaN where a plot has no value (an empty bin, a step a model did not log): "" would read as 0 in a DVC plot
    write_text(data.to_csv(index=False, float_format="%.6g", na_rep="NaN"), plots_dir / f"{name}.csv")
    image = plots_dir / f"{name}.png"
    tmp = image.with_name(f".{image.name}.tmp-{os.getpid()}")
    tmp.write_bytes(png)
    tmp.replace(image)
    return RP.figure_html(name, png, caption)


def _train_histories(model_dirs: dict[str, str | Path]) -> dict[str, list[dict]]:
    out = {}
    for name, d in model_dirs.items():
        path = Path(d) / P.TRAIN_LOG
        if not path.exists():
            raise InputError(f"{path}: file not found (the model's training loss history)")
        out[name] = _load(path)["history"]
    return out


def _ess_over_k(corpus: str | Path, k: int) -> np.ndarray:
    """ESS/K of each question with any weight (as the weights stage's ess_over_k_mean)."""
    df = read_parquet(corpus, ["question_id", "log_weight", "ess"])
    per_q = df.groupby("question_id", sort=False)
    live = per_q["log_weight"].apply(lambda s: np.isfinite(s).any())
    return per_q["ess"].first()[live].to_numpy() / k


def _per_question_evals(eval_samples: dict[str, str | Path]) -> dict:
    """Greedy correctness and pass@1 per test question of every model, checked to be the same questions."""
    evals = {name: per_question(path) for name, path in eval_samples.items()}
    for name, df in evals.items():
        if not df.index.equals(evals["initial"].index):
            raise InputError(f"{eval_samples[name]}: not the same test questions as {eval_samples['initial']}")
    return evals


def report_html(
    params: dict,
    eval_metrics: dict[str, str | Path],
    weight_metrics: dict[str, str | Path],
    set_metrics: dict[str, str | Path],
    corpora: dict[str, str | Path],
    initial_samples: list[str | Path],
    eval_samples: dict[str, str | Path],
    model_dirs: dict[str, str | Path],
    html_out: str | Path,
    plots_dir: str | Path,
    examples_per_bin: int = 2,
    bench_metrics: dict[str, dict[str, str | Path]] | None = None,
) -> Path:
    """The report page. ``corpora``: estimator -> weights table; ``eval_samples``: model -> per-sample
    eval rows (``initial`` among them); ``model_dirs``: trained model -> checkpoint (its train_log.json)."""
    plots_dir = Path(plots_dir)
    k = params["sampling"]["k"]
    models, weights, sets = load_metrics(eval_metrics, weight_metrics, set_metrics)
    bench = load_benchmark_metrics(bench_metrics or {})
    n_test = next(iter(models.values()))["n_questions"]
    traces = {e: load_corpus(p, params, initial_samples) for e, p in corpora.items()}
    acc = own_accuracy(initial_samples)
    figures = []

    log_w = {e: df["log_weight"].to_numpy() for e, df in traces.items()}
    zero = ", ".join(f"{e}: {int(np.isneginf(v).sum())} of {len(v)}" for e, v in log_w.items())
    log_w_hist = RP.histogram(log_w, RP.span_edges(log_w), "log_weight")
    figures.append(
        _plot(
            "log_weights",
            log_w_hist,
            RP.draw_histogram(
                log_w_hist,
                list(log_w),
                "Raw log-weights log rho of every trace",
                "log rho = log pi(z|x)/q(z|x,y') + log pi(Y|x,z)",
                "traces",
                log_y=True,
            ),
            plots_dir,
            "The raw log-weights before selection, per estimator of pi(Y|x,z). Traces with weight zero "
            f"(log rho = -inf: no answer delimiter, or no accepted rollout) are not drawn ({zero}).",
        )
    )

    ess = {e: _ess_over_k(p, k) for e, p in corpora.items()}
    ess_hist = RP.histogram(ess, np.linspace(0.0, 1.0, 21), "ess_over_k")
    means = ", ".join(f"{e}: mean {v.mean():.2f} over {len(v)} questions" for e, v in ess.items() if len(v))
    figures.append(
        _plot(
            "ess",
            ess_hist,
            RP.draw_histogram(ess_hist, list(ess), f"ESS/K per question (K = {k})", "ESS / K", "questions"),
            plots_dir,
            "Effective sample size 1 / sum(rho~^2) of each question's K normalised weights, over K: 1/K when one "
            f"trace takes all the weight, 1 when all weigh the same. Questions with any weight only ({means}).",
        )
    )

    evals = _per_question_evals(eval_samples)
    by_bin = RP.accuracy_by_bin(evals)
    figures.append(
        _plot(
            "accuracy_by_bin",
            by_bin,
            RP.draw_per_bin(by_bin, list(evals), "Held-out greedy accuracy by difficulty bin", "greedy accuracy"),
            plots_dir,
            f"The {n_test} test questions binned by pi_0's own accuracy on them (its avg@n over sampled answers); "
            "each model's greedy accuracy in each bin. The binning and the measure use different samples, so "
            "regression to the mean affects every model alike.",
        )
    )

    vr = {f"vr-{e}": df[df["selected"]] for e, df in traces.items()}
    shares = RP.weight_shares(acc, vr)
    figures.append(
        _plot(
            "implicit_weights",
            shares,
            RP.draw_per_bin(
                shares,
                [*RP.SCHEMES, *vr],
                "Share of the total training weight per difficulty bin",
                "share of weight",
            ),
            plots_dir,
            f"The {len(acc)} training questions binned by pi_0's own accuracy acc(x) over its samples. At "
            "theta_old = theta the gradient of log pi(Y|x) (uniform) weights every question equally; RFT weights "
            "it by acc(x); GRPO with std-normalised binary rewards by sqrt(acc/(1-acc)), and by 0 where acc is 0 "
            "or 1 (all rewards equal: zero advantage). Each scheme is normalised to shares of its total. vr-* is "
            "the weight VR's selection actually gives the selected traces (select.mode "
            f"{params['select']['mode']}), without the original data the final set may add.",
        )
    )

    losses = RP.loss_table(_train_histories(model_dirs))
    figures.append(
        _plot(
            "loss",
            losses,
            RP.draw_loss(losses, "Training loss"),
            plots_dir,
            "The smoothed training loss each trained model logged (train_log.json in its checkpoint), by step.",
        )
    )

    chosen = RP.example_questions(traces[next(iter(traces))], examples_per_bin, params["seed"])
    intro = (
        f'<p class="note">Task source {params["task"]["source"]}, {len(acc)} training and {n_test} test questions, '
        f"K = {k} traces per question, select.mode {params['select']['mode']} (select.threshold "
        f"{params['select']['threshold']:g}). Each plot's data is a CSV beside its PNG in {plots_dir.as_posix()}/ "
        "(declared as DVC plots).</p>"
    )
    page = RP.render_page(
        "varreason run report",
        intro,
        [
            (
                "Results",
                f'<p class="note">Held-out accuracy in % on {n_test} questions (± one standard error of the '
                "greedy accuracy).</p>" + _results_html(models, sets),
            ),
            *([("Benchmarks", benchmarks_html(bench))] if bench else []),
            ("Importance weights", RP.table_html(*weights_table(weights, sets), "weights")),
            ("Plots", '<div class="plots">' + "\n".join(figures) + "</div>"),
            (
                "Example traces per difficulty bin",
                f'<p class="note">Up to {examples_per_bin} training questions drawn at random per bin, each with its '
                "K posterior traces: log-weight, normalised weight and whether the final set took it, per "
                f"estimator. Traces longer than {RP.TRACE_CHARS} characters are cut.</p>"
                + RP.examples_html(traces, chosen),
            ),
        ],
    )
    return write_text(page, html_out)


def _results_html(models: dict[str, dict], sets: dict[str, dict]) -> str:
    header, rows, keys = results_table(models, sets)
    return RP.table_html(header, rows, "results", keys)

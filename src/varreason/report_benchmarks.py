"""The benchmarks section of the report: one table per benchmark, a row per model (and per group).

Reads ``metrics/benchmarks/<model>/<benchmark>.json`` (stage ``evaluate-benchmark``): accuracies in %
as the held-out table shows them (greedy ± SE, avg@n, pass@k), then for a benchmark with code
verdicts the timeouts and errors as "greedy / sampled" counts, then one row per group (LiveCodeBench's
difficulty, MMLU-Pro's category) under each model, labelled ``model: group``.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from varreason.io import InputError
from varreason.report_page import table_html

ORDER = ["initial", "sft", "rft", "vr-gml", "vr-acc"]


def load_benchmark_metrics(paths: dict[str, dict[str, str | Path]]) -> dict[str, dict[str, dict]]:
    """benchmark -> model -> metrics, from benchmark -> model -> file; a missing file is an InputError."""
    out: dict[str, dict[str, dict]] = {}
    for bench, by_model in paths.items():
        for model, path in by_model.items():
            p = Path(path)
            if not p.exists():
                raise InputError(f"{p}: benchmark metrics not found (run evaluate-benchmark for {model} on {bench})")
            try:
                out.setdefault(bench, {})[model] = json.loads(p.read_text())
            except json.JSONDecodeError as e:
                raise InputError(f"{p}: not valid JSON ({e})") from e
    return out


def metric_columns(metrics: dict) -> list[str]:
    """Accuracy columns of one model's metrics: greedy, avg@n, then pass@k by k."""
    return (
        ["greedy_acc"]
        + [k for k in metrics if k.startswith("avg@")]
        + sorted((k for k in metrics if k.startswith("pass@")), key=lambda k: int(k.split("@")[1]))
    )


def _cells(m: dict, cols: list[str]) -> list[str]:
    cells = [f"{100 * m[c]:.1f}" if c in m else "-" for c in cols]
    cells[0] += f" ± {100 * m['greedy_acc_se']:.1f}" if "greedy_acc_se" in m else ""
    return cells + [str(m.get("n_questions", "-"))]


def _counts(m: dict, verdict: str) -> str:
    v = m.get("verdicts", {})
    return f"{v.get('greedy', {}).get(verdict, 0)} / {v.get('sampled', {}).get(verdict, 0)}"


def benchmark_table(by_model: dict[str, dict]) -> tuple[list[str], list[list[str]]]:
    """One benchmark's header and rows (models in the run's order, each followed by its groups)."""
    names = [n for n in ORDER if n in by_model] + sorted(set(by_model) - set(ORDER))
    cols = metric_columns(by_model[names[0]])
    code = any(sum(m.get("verdicts", {}).get(d, {}).get(v, 0) for d in ("greedy", "sampled")
                   for v in ("timeout", "error")) for m in by_model.values())  # fmt: skip
    header = ["model", *cols, "questions"] + (["timeouts (greedy / sampled)", "errors"] if code else [])
    rows = []
    for n in names:
        m = by_model[n]
        rows.append([n, *_cells(m, cols)] + ([_counts(m, "timeout"), _counts(m, "error")] if code else []))
        for group, g in m.get("groups", {}).items():
            rows.append([f"{n}: {group}", *_cells(g, cols)] + (["", ""] if code else []))
    return header, rows


def benchmarks_markdown(bench: dict[str, dict[str, dict]]) -> str:
    """The "Benchmarks" section of reports/summary.md ("" when the run has none)."""
    if not bench:
        return ""
    parts = ["## Benchmarks\n\nAccuracy in % (± one standard error of the greedy accuracy).\n"]
    for name, by_model in bench.items():
        header, rows = benchmark_table(by_model)
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        parts.append(f"### {name}\n\n" + "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n")
    return "\n".join(parts)


def benchmarks_html(bench: dict[str, dict[str, dict]]) -> str:
    """The same tables for the report page."""
    parts = ['<p class="note">Accuracy in % (± one standard error of the greedy accuracy); timeouts and errors '
             "of code benchmarks count as wrong and are counted apart.</p>"]  # fmt: skip
    for name, by_model in bench.items():
        parts.append(f"<h3>{html.escape(name)}</h3>" + table_html(*benchmark_table(by_model), f"benchmark-{name}"))
    return "\n".join(parts)

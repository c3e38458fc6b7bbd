"""Stage ``report``: one table of every model's held-out numbers, plus the weight diagnostics.

Writes ``metrics/summary.json`` and a markdown page ``reports/summary.md``, and returns the table
so the CLI prints it when the run ends.
"""

from __future__ import annotations

import json
from pathlib import Path

from varreason.io import write_json, write_text

ORDER = ["initial", "sft", "rft", "vr-gml", "vr-acc"]


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


def report(
    eval_metrics: dict[str, str | Path],
    weight_metrics: dict[str, str | Path],
    set_metrics: dict[str, str | Path],
    summary_out: str | Path,
    page_out: str | Path,
    accuracy_plot: str | Path | None = None,
    iwae_plot: str | Path | None = None,
) -> str:
    models = {name: _load(p) for name, p in eval_metrics.items()}
    weights = {name: _load(p) for name, p in weight_metrics.items()}
    sets = {name: _load(p) for name, p in set_metrics.items()}
    names = [n for n in ORDER if n in models] + sorted(set(models) - set(ORDER))
    first = models[names[0]]
    cols = (
        ["greedy_acc"]
        + [k for k in first if k.startswith("avg@")]
        + sorted((k for k in first if k.startswith("pass@")), key=lambda k: int(k.split("@")[1]))
    )
    extra = [c for c in ("greedy_trace_valid", "greedy_trace_steps") if c in first]
    header = [
        "model",
        *cols,
        *[{"greedy_trace_valid": "greedy trace valid", "greedy_trace_steps": "steps"}[c] for c in extra],
        "train examples",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for n in names:
        m = models[n]
        cells = [f"{100 * m[c]:.1f}" for c in cols]
        cells[0] += f" ± {100 * m['greedy_acc_se']:.1f}"
        cells += [f"{100 * m[c]:.1f}" if c == "greedy_trace_valid" else f"{m[c]:.2f}" for c in extra]
        cells.append(str(sets.get(n, {}).get("n_examples", "-")))
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    n_q = first["n_questions"]
    wl = [
        "| estimator | ESS/K | median top weight | mean log-ratio | mean log pi(Y|x,z) | questions with weight "
        "| selected | selected valid |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for est, w in weights.items():
        s = sets.get(f"vr-{est}", {})
        cells = [
            _fmt(w["ess_over_k_mean"]),
            _fmt(w["top_weight_median"]),
            _fmt(w["log_ratio_mean"], 3),
            _fmt(w["log_likelihood_mean"], 3),
            _fmt(w["questions_with_any_weight"], pct=True),
            str(s.get("n_selected", "-")),
            _fmt(s.get("selected_valid_frac"), pct=True),
        ]
        wl.append(f"| {est} | " + " | ".join(cells) + " |")
    page = (
        "# varreason results\n\n"
        f"Held-out accuracy in % on {n_q} questions (± one standard error of the greedy accuracy).\n\n"
        f"{table}\n\n## Importance weights\n\n" + "\n".join(wl) + "\n"
    )
    if accuracy_plot:
        rows = [{"model": n, **{c: models[n][c] for c in cols}} for n in names]
        write_text(_csv(rows), accuracy_plot)
    if iwae_plot:
        rows = [
            {"estimator": est, "k": int(k), "iwae_bound": b}
            for est, w in weights.items()
            for k, b in w.get("iwae_bound_by_k", {}).items()
        ]
        write_text(_csv(rows), iwae_plot)
    write_json({"models": models, "weights": weights, "training_sets": sets}, summary_out)
    write_text(page, page_out)
    return page

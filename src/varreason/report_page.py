"""The report page of a run: each plot's data, its drawing, and one self-contained HTML file.

The stage ``report`` (varreason/stages/report.py) reads the run's files and calls these. Every
plot is a small table (written as a CSV that dvc.yaml declares as a DVC plot) drawn by matplotlib's
Agg renderer to a PNG; the page embeds the PNGs as data URIs and has no script, stylesheet or font
to fetch, so it opens from file:// on a machine without network.

The implicit weighting (docs/design.md, "Unification"): at theta_old = theta, the gradient of
log pi(Y|x) weights every question equally; RFT weights a question by pi_0's accuracy acc(x) on it;
GRPO with std-normalised binary rewards by sqrt(acc / (1 - acc)). Where acc is 0 or 1 every reward
of the group is equal, the standard deviation is 0 and the advantage is 0, so GRPO's weight is 0
there (the formula's limit at acc -> 1 is infinite; the algorithm's gradient is not).
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from varreason.stats import BIN_EDGES, BIN_LABELS, bin_shares, difficulty_bin

# the middle of each difficulty bin: the numeric x of the per-bin plots
BIN_MIDS = tuple((lo + hi) / 2 for lo, hi in zip((0.0, *BIN_EDGES), (*BIN_EDGES, 1.0), strict=True))
SCHEMES = ("uniform", "rft", "grpo")
TRACE_CHARS = 600  # longer traces are cut on the page (the corpus has them whole)


# ---- the data of each plot -------------------------------------------------------------------


def implicit_weights(acc: pd.Series) -> pd.DataFrame:
    """Per question, the weight each objective puts on grad log pi(Y|x) (see the module docstring)."""
    a = acc.to_numpy(dtype=float)
    inner = (a > 0) & (a < 1)
    grpo = np.zeros_like(a)
    grpo[inner] = np.sqrt(a[inner] / (1 - a[inner]))
    return pd.DataFrame({"uniform": np.ones_like(a), "rft": a, "grpo": grpo}, index=acc.index)


def _per_bin_frame(counts: np.ndarray, columns: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame({"bin": BIN_LABELS, "difficulty": BIN_MIDS, "questions": counts, **columns})


def weight_shares(acc: pd.Series, selected: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """Share of the total training weight per difficulty bin: uniform, RFT, GRPO and VR's selection.

    ``acc``: pi_0's own accuracy per training question. ``selected``: per VR estimator, its traces
    with ``initial_acc`` and ``train_weight`` (varreason.traces.load_corpus); the weight the final
    set gives each selected trace.
    """
    bins = difficulty_bin(acc.to_numpy())
    w = implicit_weights(acc)
    cols = {s: bin_shares(bins, w[s].to_numpy()) for s in SCHEMES}
    for name, df in (selected or {}).items():
        cols[name] = bin_shares(difficulty_bin(df["initial_acc"].to_numpy()), df["train_weight"].to_numpy())
    return _per_bin_frame(np.bincount(bins, minlength=len(BIN_LABELS)), cols)


def accuracy_by_bin(per_question: dict[str, pd.DataFrame], reference: str = "initial") -> pd.DataFrame:
    """Greedy accuracy of every model on the test questions of each difficulty bin.

    ``per_question``: per model, ``greedy`` and ``pass1`` indexed by question id, all on the same
    questions; a question's bin is ``reference``'s (pi_0's) pass@1 over its sampled answers (avg@n).
    An empty bin has no accuracy (NaN).
    """
    bins = difficulty_bin(per_question[reference]["pass1"].to_numpy())
    cols = {}
    for name, df in per_question.items():
        g = df["greedy"].to_numpy(dtype=float)
        cols[name] = [float(g[bins == i].mean()) if (bins == i).any() else np.nan for i in range(len(BIN_LABELS))]
    return _per_bin_frame(np.bincount(bins, minlength=len(BIN_LABELS)), cols)


def histogram(values: dict[str, np.ndarray], edges: np.ndarray, x: str) -> pd.DataFrame:
    """Counts of each series' finite values in common bins: x (bin centre), left, right, one column a series."""
    out = pd.DataFrame({x: (edges[:-1] + edges[1:]) / 2, "left": edges[:-1], "right": edges[1:]})
    for name, v in values.items():
        v = np.asarray(v, dtype=float)
        out[name] = np.histogram(v[np.isfinite(v)], bins=edges)[0]
    return out


def span_edges(values: dict[str, np.ndarray], n: int = 40) -> np.ndarray:
    """``n`` equal bins over the range of every series' finite values."""
    finite = np.concatenate([np.asarray(v, dtype=float)[np.isfinite(v)] for v in values.values()] + [np.zeros(0)])
    if finite.size == 0:
        return np.linspace(-1.0, 0.0, n + 1)
    lo, hi = float(finite.min()), float(finite.max())
    return np.linspace(lo, hi if hi > lo else lo + 1.0, n + 1)


def loss_table(histories: dict[str, list[dict]]) -> pd.DataFrame:
    """One row per logged step, one column per model: its smoothed training loss (empty where not logged)."""
    cols = {
        name: pd.Series({r["step"]: r.get("smoothed_loss", r["loss"]) for r in h}, dtype=float)
        for name, h in histories.items()
    }
    out = pd.DataFrame(cols).sort_index()
    out.index.name = "step"
    return out.reset_index()


def example_questions(corpus: pd.DataFrame, per_bin: int, seed: int) -> dict[str, list]:
    """Up to ``per_bin`` question ids drawn at random (fixed seed) from each difficulty bin of a corpus."""
    rng = np.random.default_rng(seed)
    out = {}
    for label in BIN_LABELS:
        ids = sorted(corpus.loc[corpus["bin"] == label, "question_id"].unique())
        out[label] = sorted(rng.choice(ids, size=min(per_bin, len(ids)), replace=False).tolist()) if ids else []
    return out


# ---- drawing ---------------------------------------------------------------------------------


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()


def _axes(title: str, xlabel: str, ylabel: str, size=(7.5, 3.6)):
    fig = Figure(figsize=size)
    ax = fig.subplots()
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    return fig, ax


def _legend_outside(ax) -> None:
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))


def draw_histogram(
    df: pd.DataFrame, series: list[str], title: str, xlabel: str, ylabel: str, log_y: bool = False
) -> bytes:
    fig, ax = _axes(title, xlabel, ylabel + (" (log scale)" if log_y else ""))
    edges = np.append(df["left"].to_numpy(), df["right"].iloc[-1]) if len(df) else np.zeros(1)
    for i, name in enumerate(series):
        color = f"C{i}"
        ax.stairs(df[name].to_numpy(), edges, label=name, fill=True, alpha=0.3, color=color)
        ax.stairs(df[name].to_numpy(), edges, linewidth=1.2, color=color)
    if log_y:
        ax.set_yscale("log")
        ax.set_ylim(bottom=0.7)
        _plain_log_ticks(ax)
    _legend_outside(ax)
    return _png(fig)


def _plain_log_ticks(ax) -> None:
    """Tick labels 0.2, 0.5, 1, 2, ... on a log axis instead of 2x10^-1."""
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def draw_per_bin(df: pd.DataFrame, series: list[str], title: str, ylabel: str) -> bytes:
    """Grouped bars: one group per difficulty bin (labelled with its question count), one bar per series."""
    fig, ax = _axes(title, "difficulty bin: pi_0's own accuracy on the question", ylabel)
    x = np.arange(len(df))
    width = 0.8 / max(len(series), 1)
    for i, name in enumerate(series):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, df[name].fillna(0).to_numpy(), width, label=name)
    ax.set_xticks(x, [f"{b}\n({n} questions)" for b, n in zip(df["bin"], df["questions"], strict=True)])
    _legend_outside(ax)
    return _png(fig)


def draw_loss(df: pd.DataFrame, title: str) -> bytes:
    fig, ax = _axes(title, "training step", "smoothed loss (log scale)")
    for name in df.columns.drop("step"):
        s = df[["step", name]].dropna()
        ax.plot(s["step"], s[name], marker=".", label=name)
    ax.set_yscale("log")
    _plain_log_ticks(ax)
    _legend_outside(ax)
    return _png(fig)


# ---- the page --------------------------------------------------------------------------------

STYLE = """
body { font-family: sans-serif; max-width: 1300px; margin: 1.5em auto; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; vertical-align: top; }
th { background: #f2f2f2; } td:first-child, th:first-child { text-align: left; }
.plots { display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: 1em; }
figure { margin: 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption, .note { color: #555; font-size: 0.9em; max-width: 900px; }
table.traces td.trace { text-align: left; font-family: monospace; white-space: pre-wrap; max-width: 520px; }
tr.selected td { background: #e8f5e9; }
.question { font-family: monospace; }
"""


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def table_html(header: list[str], rows: list[list[str]], table_id: str, keys: list[str] | None = None) -> str:
    """A table whose rows carry ``data-row`` (the first cell) and cells ``data-col`` (``keys`` or the header)."""
    keys = keys or header
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        f'<tr data-row="{_e(r[0])}">'
        + "".join(f'<td data-col="{_e(k)}">{_e(c)}</td>' for k, c in zip(keys, r, strict=True))
        + "</tr>"
        for r in rows
    )
    return f'<table id="{_e(table_id)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def figure_html(name: str, png: bytes, caption: str) -> str:
    src = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    return f'<figure id="plot-{_e(name)}"><img alt="{_e(name)}" src="{src}"><figcaption>{caption}</figcaption></figure>'


def examples_html(corpora: dict[str, pd.DataFrame], chosen: dict[str, list]) -> str:
    """Per difficulty bin, each chosen question with its K traces, log-weight and selection per estimator."""
    names = list(corpora)
    indexed = {n: df.set_index(["question_id", "sample_index"]) for n, df in corpora.items()}
    base = indexed[names[0]]
    parts = []
    for label, ids in chosen.items():
        parts.append(f"<h3>Bin {_e(label)}</h3>")
        if not ids:
            parts.append('<p class="note">No training question in this bin.</p>')
        for qid in ids:
            g = base.loc[qid].sort_index()
            head = "".join(f"<th>log w ({_e(n)})</th><th>w~ ({_e(n)})</th><th>selected ({_e(n)})</th>" for n in names)
            rows = []
            for k, r in g.iterrows():
                cells, any_selected = [], False
                for n in names:
                    c = indexed[n].loc[(qid, k)]
                    any_selected |= bool(c["selected"])
                    cells.append(
                        f"<td>{c['log_weight']:.3f}</td><td>{c['weight']:.3f}</td>"
                        f"<td>{'yes' if c['selected'] else ''}</td>"
                    )
                trace = r["trace"] if len(r["trace"]) <= TRACE_CHARS else r["trace"][:TRACE_CHARS] + " …"
                rows.append(
                    f"<tr{' class=selected' if any_selected else ''}><td>{k}</td>"
                    f'<td class="trace">{_e(trace)}</td><td>{_e(r["finish_reason"])}</td>{"".join(cells)}</tr>'
                )
            acc = f"{g['initial_acc'].iloc[0]:.2f}" if "initial_acc" in g else "-"
            parts.append(
                f'<p><b>{_e(qid)}</b> (pi_0 accuracy {acc}): <span class="question">{_e(g["question"].iloc[0])}</span>'
                f' &rarr; reference answer <span class="question">{_e(g["answer"].iloc[0])}</span></p>'
                f'<table class="traces"><thead><tr><th>k</th><th>trace</th><th>finish</th>{head}</tr></thead>'
                f"<tbody>{''.join(rows)}</tbody></table>"
            )
    return "\n".join(parts)


def render_page(title: str, intro: str, sections: list[tuple[str, str]]) -> str:
    """The whole page: ``sections`` are (heading, HTML body) pairs; ``intro`` is HTML."""
    body = "\n".join(f"<section><h2>{_e(h)}</h2>\n{b}\n</section>" for h, b in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head>\n"
        f"<body><h1>{_e(title)}</h1>\n{intro}\n{body}\n</body></html>\n"
    )

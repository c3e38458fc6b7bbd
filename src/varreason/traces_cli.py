"""Terminal views of ``varreason traces`` (rich tables; ``--json`` prints the same data as JSON)."""

from __future__ import annotations

import argparse
import glob
import json
import sys

from varreason import paths as P
from varreason.io import read_parquet

SUBCOMMANDS = {
    "summary": "counts, lengths, finish reasons, validity, ESS/K and top-weight spread, dropped questions and why",
    "show": "one question: reference trace and answer, and its K traces with log pi, log q, answer term, weights",
    "list": "traces matching the filters, one per line",
    "export": "write the traces matching the filters to .parquet or .jsonl",
}


def configure(p: argparse.ArgumentParser) -> None:
    """The views of ``varreason traces``, each a subcommand with its filters."""
    p.description = (
        "Inspect a run's trace corpus (a weights table). Selection is recomputed with the run's "
        "select params; difficulty bins come from pi_0's own samples."
    )
    tsub = p.add_subparsers(dest="traces_command", required=True, metavar="VIEW")
    for name, summary in SUBCOMMANDS.items():
        t = tsub.add_parser(name, help=summary, description=summary)
        t.add_argument(
            "--corpus",
            default=P.WEIGHTED_TRACES.format(estimator="gml"),
            help=f"a weights table (default: {P.WEIGHTED_TRACES.format(estimator='gml')})",
        )
        t.add_argument(
            "--initial-samples",
            nargs="*",
            default=None,
            help="pi_0's sample shards, for difficulty bins (default: data/traces/initial/shard-*.parquet if present; "
            "none given: no bins)",
        )
        t.add_argument(
            "--train",
            default=P.PREPARED_TRAIN,
            help=f"the prepared split, for reference traces (default: {P.PREPARED_TRAIN})",
        )
        t.add_argument("--json", action="store_true", help="print JSON instead of tables")
        if name == "show":
            t.add_argument("question_id")
        if name in ("list", "export"):
            sel = t.add_mutually_exclusive_group()
            sel.add_argument(
                "--selected", dest="selected", action="store_const", const=True, default=None, help="selected only"
            )
            sel.add_argument("--dropped", dest="selected", action="store_const", const=False, help="not selected only")
            t.add_argument("--bin", default=None, help="difficulty bin: <.25, .25-.5, .5-.75 or >=.75")
            t.add_argument("--min-weight", type=float, default=None, help="normalised weight rho~ at least this")
            t.add_argument("--max-weight", type=float, default=None, help="normalised weight rho~ at most this")
            t.add_argument("--grep", default=None, help="text the trace or the question contains")
        if name == "list":
            t.add_argument("--limit", type=int, default=50, help="print at most this many traces (default: 50)")
        if name == "export":
            t.add_argument("--out", required=True, help="a .parquet or .jsonl file")


def _filters(args) -> dict:
    return dict(
        selected=args.selected,
        bin_label=args.bin,
        min_weight=args.min_weight,
        max_weight=args.max_weight,
        contains=args.grep,
    )


def run(args, params: dict) -> None:
    from varreason.traces import export, filter_corpus, load_corpus, show, summary

    shards = args.initial_samples
    if shards is None:
        shards = sorted(glob.glob(P.INITIAL_SAMPLES.replace("{shard}", "*")))
    df = load_corpus(args.corpus, params, shards)
    c = args.traces_command
    if c == "summary":
        data = summary(df, params, params["sampling"]["k"])
        _emit(args, data, _render_summary)
    elif c == "show":
        ref = read_parquet(args.train, ["question_id", "trace", "answer"]) if args.train else None
        _emit(args, show(df, args.question_id, ref), _render_show)
    else:
        sub = filter_corpus(df, **_filters(args))
        if c == "export":
            out = export(sub, args.out)
            print(f"wrote {len(sub)} traces to {out}", file=sys.stderr)
        else:
            cols = [
                x
                for x in ["question_id", "sample_index", "bin", "trace", "log_weight", "weight", "selected"]
                if x in sub
            ]
            rows = sub[cols].head(args.limit)
            _emit(args, {"matched": len(sub), "rows": rows.to_dict("records")}, _render_list)


def _emit(args, data: dict, render) -> None:
    if args.json:
        print(json.dumps(data, indent=2, default=float))
    else:
        render(data)


def _console():
    from rich.console import Console

    # wide enough for a trace per line when piped (rich assumes 80 columns without a terminal)
    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def _fmt(x, digits=3) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _render_summary(d: dict) -> None:
    from rich.table import Table

    con = _console()
    con.print(
        f"[bold]{d['questions']}[/] questions, [bold]{d['traces']}[/] traces; "
        f"[green]{d['selected_traces']}[/] selected on {d['questions_selected']} questions"
    )
    t = Table(title="distributions", show_lines=False)
    for col in ("", "p10", "median", "p90", "mean"):
        t.add_column(col, justify="right" if col else "left")
    for name, key in (
        ("trace length (chars)", "trace_length_chars"),
        ("log-weight", "log_weight"),
        ("top weight per question", "top_weight"),
        ("ESS/K per question", "ess_over_k"),
    ):
        q = d.get(key) or {}
        t.add_row(name, *(_fmt(q.get(c)) for c in ("p10", "median", "p90", "mean")))
    con.print(t)
    con.print("finish reasons: " + ", ".join(f"{k} {v}" for k, v in d["finish_reasons"].items()))
    if "verified_valid_traces" in d:
        con.print(
            f"every step right: {100 * d['verified_valid_traces']:.1f}% of traces, "
            f"{100 * (d['verified_valid_selected'] or 0):.1f}% of the selected ones"
        )
    dropped = d["questions_dropped"]
    con.print("questions dropped: " + (", ".join(f"{n} ({r})" for r, n in dropped.items()) or "none"))
    if "bins" in d:
        b = Table(title="difficulty bins (pi_0's own accuracy)")
        b.add_column("bin")
        b.add_column("questions", justify="right")
        b.add_column("selected weight share", justify="right")
        for label, v in d["bins"].items():
            b.add_row(label, str(v["questions"]), f"{100 * v['selected_weight_share']:.1f}%")
        con.print(b)


def _render_show(d: dict) -> None:
    from rich.table import Table

    con = _console()
    con.print(f"[bold]{d['question_id']}[/]  question [cyan]{d['question']}[/]  answer [cyan]{d['answer']}[/]")
    if d["reference"]:
        con.print(f"reference trace: {d['reference']['trace']}  answer {d['reference']['answer']}")
    t = Table(show_lines=False)
    cols = [
        c
        for c in (
            "sample_index",
            "trace",
            "log_pi",
            "log_q",
            "log_ratio",
            "log_likelihood",
            "log_weight",
            "weight",
            "selected",
        )
        if c in d["traces"][0]
    ]
    heads = {"sample_index": "k", "log_likelihood": "answer term", "weight": "rho~"}
    for c in cols:
        t.add_column(heads.get(c, c), justify="left" if c == "trace" else "right", no_wrap=c != "trace")
    for r in d["traces"]:
        style = "green" if r.get("selected") else ("dim" if r.get("weight") in (0, None) else None)
        t.add_row(*(_fmt(r.get(c)) for c in cols), style=style)
    con.print(t)


def _render_list(d: dict) -> None:
    from rich.table import Table

    con = _console()
    rows = d["rows"]
    con.print(f"{d['matched']} traces match" + (f"; the first {len(rows)}" if len(rows) < d["matched"] else ""))
    if not rows:
        return
    t = Table()
    for c in rows[0]:
        t.add_column(c, justify="left" if c in ("question_id", "trace", "bin") else "right", no_wrap=c != "trace")
    for r in rows:
        t.add_row(*(_fmt(v) for v in r.values()), style="green" if r.get("selected") else None)
    con.print(t)

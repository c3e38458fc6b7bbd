"""``varreason traces``: look at a run's trace corpora from a terminal (or as JSON for scripts).

A corpus is a weights table (``data/traces/weighted-{gml,acc}.parquet``: every sampled trace with
its log-probs, log-weight and normalised weight). Selection is recomputed with the run's
``select`` params by the same function the build stage uses, so "selected" here is what the final
set got. Difficulty bins come from pi_0's own samples (``data/traces/initial/``), as in the claims
report. Simplification: one corpus at a time; the reference trace comes from the prepared split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from varreason import columns as C
from varreason.corpus import own_accuracy, select_for
from varreason.io import InputError, read_parquet
from varreason.stats import BIN_LABELS, difficulty_bin


def load_corpus(
    corpus: str | Path,
    params: dict,
    initial_samples: list[str | Path] = (),
) -> pd.DataFrame:
    """The weights table with ``selected`` (and the difficulty ``bin`` when pi_0's samples are given)."""
    df = read_parquet(corpus, C.CORPUS)
    sel = select_for(df, params)
    df["selected"] = df.index.isin(sel.index)
    df["train_weight"] = 0.0
    df.loc[sel.index, "train_weight"] = sel["train_weight"]
    if initial_samples:
        acc = own_accuracy(initial_samples)
        missing = sorted(set(df["question_id"]) - set(acc.index))
        if missing:
            raise InputError(f"pi_0 samples: no samples for question {missing[0]} of {corpus}")
        df["initial_acc"] = df["question_id"].map(acc).astype(float)
        df["bin"] = [BIN_LABELS[i] for i in difficulty_bin(df["initial_acc"].to_numpy())]
    return df


def drop_reasons(df: pd.DataFrame, params: dict) -> pd.Series:
    """Why each question without a selected trace was dropped, by question id (in corpus order)."""
    flags = df.assign(stop=df["finish_reason"].eq("stop"), live=np.isfinite(df["log_weight"]))
    q = flags.groupby("question_id", sort=False)[["selected", "stop", "live"]].any()
    q = q[~q["selected"]]
    threshold = params["select"]["threshold"]
    reasons = np.where(
        ~q["stop"],
        "no trace reached the answer delimiter",
        np.where(~q["live"], "every weight is zero", f"best weight rho <= {threshold:g}"),
    )
    return pd.Series(reasons, index=q.index, dtype=object)


def _quantiles(x: pd.Series) -> dict:
    x = x[np.isfinite(x)]
    if x.empty:
        return {}
    q = np.quantile(x, [0.1, 0.5, 0.9])
    return {"p10": float(q[0]), "median": float(q[1]), "p90": float(q[2]), "mean": float(x.mean())}


def summary(df: pd.DataFrame, params: dict, k: int) -> dict:
    per_q = df.groupby("question_id", sort=False)
    reasons = drop_reasons(df, params)
    lengths = df["trace"].str.len()
    out = {
        "questions": int(per_q.ngroups),
        "traces": len(df),
        "trace_length_chars": _quantiles(lengths.astype(float)),
        "finish_reasons": {str(k_): int(v) for k_, v in df["finish_reason"].value_counts().items()},
        "selected_traces": int(df["selected"].sum()),
        "questions_selected": int(per_q["selected"].any().sum()),
        "questions_dropped": {str(r): int(n) for r, n in reasons.value_counts().items()},
        "top_weight": _quantiles(per_q["weight"].max().astype(float)),
        "log_weight": _quantiles(df["log_weight"].astype(float)),
    }
    if "ess" in df.columns:
        # over questions with any weight, as the weights stage's ess_over_k_mean
        live = np.isfinite(df["log_weight"]).groupby(df["question_id"], sort=False).any()
        out["ess_over_k"] = _quantiles(per_q["ess"].first()[live].astype(float) / k)
    if params["task"]["source"] == "synthetic":
        from varreason.task import trace_check

        # each distinct (question, trace) pair once: K samples of a question often repeat a trace
        pairs = list(zip(df["question"], df["trace"], strict=True))
        check = {p: trace_check(*p, params["task"]["modulus"])[0] for p in set(pairs)}
        valid = np.array([check[p] for p in pairs])
        out["verified_valid_traces"] = float(valid.mean())
        out["verified_valid_selected"] = (
            float(valid[df["selected"].to_numpy()].mean()) if df["selected"].any() else None
        )
    if "bin" in df.columns:
        qb = per_q["bin"].first()
        mass = df.groupby("bin")["train_weight"].sum()
        out["bins"] = {
            b: {
                "questions": int((qb == b).sum()),
                "selected_weight_share": float(mass.get(b, 0.0) / mass.sum()) if mass.sum() > 0 else 0.0,
            }
            for b in BIN_LABELS
        }
    return out


def filter_corpus(
    df: pd.DataFrame,
    selected: bool | None = None,
    bin_label: str | None = None,
    min_weight: float | None = None,
    max_weight: float | None = None,
    contains: str | None = None,
) -> pd.DataFrame:
    """Rows matching every given filter (``selected`` False keeps the traces that were not chosen)."""
    mask = pd.Series(True, index=df.index)
    if selected is not None:
        mask &= df["selected"] == selected
    if bin_label is not None:
        if "bin" not in df.columns:
            raise InputError("--bin needs pi_0's samples (--initial-samples) to bin questions by difficulty")
        if bin_label not in BIN_LABELS:
            raise InputError(f"--bin {bin_label!r}: one of {list(BIN_LABELS)}")
        mask &= df["bin"] == bin_label
    if min_weight is not None:
        mask &= df["weight"] >= min_weight
    if max_weight is not None:
        mask &= df["weight"] <= max_weight
    if contains:
        mask &= df["trace"].str.contains(contains, regex=False) | df["question"].str.contains(contains, regex=False)
    return df[mask]


def show(df: pd.DataFrame, question_id: str, reference: pd.DataFrame | None = None) -> dict:
    """One question: its reference trace and answer, and its K traces with every term of the weight."""
    g = df[df["question_id"] == question_id].sort_values("sample_index")
    if g.empty:
        raise InputError(f"question {question_id!r} is not in this corpus")
    ref = None
    if reference is not None:
        r = reference[reference["question_id"] == question_id]
        ref = None if r.empty else {"trace": r["trace"].iloc[0], "answer": r["answer"].iloc[0]}
    cols = [
        c
        for c in [
            "sample_index",
            "trace",
            "finish_reason",
            "log_ratio",
            "log_likelihood",
            "log_weight",
            "weight",
            "selected",
        ]
        if c in g.columns
    ]
    rows = g[cols].copy()
    for name, col in (("log_pi", "prior_logps"), ("log_q", "posterior_logps")):
        if col in g.columns:
            rows[name] = [float(np.sum(x)) for x in g[col]]
    return {
        "question_id": question_id,
        "question": g["question"].iloc[0],
        "answer": g["answer"].iloc[0],
        "reference": ref,
        "traces": rows.replace({np.nan: None}).to_dict("records"),
    }


def export(df: pd.DataFrame, out: str | Path) -> Path:
    from varreason.io import write_parquet

    out = Path(out)
    if out.suffix == ".parquet":
        return write_parquet(df.reset_index(drop=True), out)
    if out.suffix == ".jsonl":
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        df.reset_index(drop=True).to_json(tmp, orient="records", lines=True)
        tmp.replace(out)
        return out
    raise InputError(f"{out}: export writes .parquet or .jsonl")

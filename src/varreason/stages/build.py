"""Stages ``build_final`` (VR's training set) and the data half of ``baselines`` (SFT, RFT).

A final set has one row per training example: the reasoner prompt, the completion as token ids
(sampled trace ids + answer + EOS; never re-tokenised text), and a weight for the weighted SFT loss.
Selection modes: ``argmax`` (per question the trace of largest weight; questions whose weights are
all zero are dropped), ``threshold`` (argmax, kept only if its weight rho exceeds
``select.threshold``), ``soft`` (every trace, weighted by its normalised weight rho~: the IWAE
gradient). With ``select.mix_original`` the original data is added with weight 1.

``select.fallback_original`` (the reference's rule): a question of the weights table
whose traces all have weight zero (every log-weight -inf, NaN or +inf: no trace reached the
delimiter, the estimator gave none any weight, or every one is too long under
``select.max_thinking_tokens``) gets its original trace as its selected example (``source``
``fallback``, weight 1), after the selected rows. With ``mix_original`` that question's original
trace is then in the set twice, as in the reference's ``-mix`` sets (``build_data_{GML,Acc}.py``:
every question once in the selected half, the original data once more). Only zero-weight questions
fall back: one whose best weight is positive but at most ``select.threshold`` (threshold mode) is
dropped, as before.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from varreason import columns as C
from varreason.corpus import fallback_questions, select_for
from varreason.io import check_token_ids, read_parquet, write_json, write_parquet
from varreason.modeling import load_tokenizer, vocab_size
from varreason.prompting import Prompter, prompter_for
from varreason.task import fine_trace, trace_check


def _original_rows(train: pd.DataFrame, pi: Prompter) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "question_id": train["question_id"],
            "source": "original",
            "prompt": [pi.reasoner(q) for q in train["question"]],
            "trace": train["trace"],
            "completion_token_ids": [
                pi.encode(pi.completion(t, a)) + [pi.end_id]
                for t, a in zip(train["trace"], train["answer"], strict=True)
            ],
            "weight": 1.0,
        }
    )


def _finish(
    rows: pd.DataFrame, train, pi: Prompter, params, out, metrics_out, extra: dict, fallback: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The final set (original data first when mixed, fallback rows last) and its metrics, selected
    traces' validity included."""
    parts = [_original_rows(train, pi)] if params["select"]["mix_original"] else []
    final = pd.concat([*parts, rows, *([] if fallback is None else [fallback])], ignore_index=True)
    write_parquet(final, out)
    stats = {"n_examples": len(final), "n_selected": len(rows), **extra}
    if params["task"]["source"] == "synthetic" and len(rows):
        checks = [
            trace_check(q, t, params["task"]["modulus"]) for q, t in zip(rows["question"], rows["trace"], strict=True)
        ]
        stats["selected_valid_frac"] = float(np.mean([c[0] for c in checks]))
        stats["selected_steps_mean"] = float(np.mean([c[1] for c in checks]))
    write_json(stats, metrics_out)
    return final


def build_final(
    params: dict,
    weights: str | Path,
    train: str | Path,
    initial: str | Path,
    out: str | Path,
    metrics: str | Path,
) -> pd.DataFrame:
    """VR's final training set: the traces the selection keeps from one weights table (+ the original data)."""
    df = read_parquet(weights, C.WEIGHTED_TRACES)
    train_df = read_parquet(train, ["question_id", "question", "trace", "answer"])
    pi = prompter_for(params, load_tokenizer(initial))
    n_vocab = vocab_size(initial, pi.tokenizer)
    for col in ("trace_token_ids", "answer_token_ids"):
        check_token_ids(df, col, n_vocab, weights, str(initial))
    sel = select_for(df, params)
    rows = pd.DataFrame(
        {
            "question_id": sel["question_id"],
            "source": "selected",
            "question": sel["question"],
            "prompt": [pi.reasoner(q) for q in sel["question"]],
            "trace": sel["trace"],
            "completion_token_ids": [
                list(t) + list(a) + [pi.end_id]
                for t, a in zip(sel["trace_token_ids"], sel["answer_token_ids"], strict=True)
            ],
            "weight": sel["train_weight"],
        }
    )
    extra = _covers(sel, train_df)
    fallback = None
    if params["select"]["fallback_original"]:
        ids = set(fallback_questions(df))
        fb = train_df[train_df["question_id"].isin(ids)]
        fallback = _original_rows(fb, pi).assign(source="fallback", question=fb["question"])
        extra["questions_fallback"] = len(fb)
    return _finish(rows, train_df, pi, params, out, metrics, extra, fallback)


def grpo_weights(correct: pd.Series, question_ids: pd.Series) -> pd.Series:
    """Offline GRPO's weight of each sample: its advantage (r - mean) / std within its question, the
    positive half only (correct samples of questions pi_0 solves sometimes, not always), scaled so
    that the kept samples' weights average one (the loss scale of RFT's unit weights)."""
    r = correct.astype(np.float64)
    mean = r.groupby(question_ids, sort=False).transform("mean")
    std = np.sqrt(mean * (1 - mean))
    adv = ((r - mean) / std.where(std > 0)).where(r > 0).fillna(0.0)
    kept = adv > 0
    return (adv / adv[kept].mean()).where(kept, 0.0) if kept.any() else adv


def build_baseline(
    params: dict,
    kind: str,
    train: str | Path,
    samples: list[str | Path],
    initial: str | Path,
    out: str | Path,
    metrics: str | Path,
) -> pd.DataFrame:
    """A baseline's set. SFT: the original data alone. Oracle: every question once with its finest
    correct trace (embedded task only; an upper bound the task can produce). RFT: pi_0's verified-
    correct samples (distinct per question; at most ``baselines.rft_per_question``, drawn at random).
    GRPO: pi_0's correct samples weighted by their group-normalised advantage (``grpo_weights``)."""
    train_df = read_parquet(train, ["question_id", "question", "trace", "answer"])
    pi = prompter_for(params, load_tokenizer(initial))
    if kind == "sft":
        final = _original_rows(train_df, pi)
        write_parquet(final, out)
        write_json({"n_examples": len(train_df), "n_selected": 0, **_covers(train_df, train_df)}, metrics)
        return final
    if kind == "oracle":
        if params["task"]["source"] != "synthetic":
            raise ValueError(
                "baseline oracle needs the embedded task (task.source synthetic): it writes the finest traces"
            )
        fine = train_df.assign(trace=[fine_trace(q, params["task"]["modulus"]) for q in train_df["question"]])
        rows = _original_rows(fine, pi).assign(source="selected", question=fine["question"])
        return _finish(rows, train_df, pi, params, out, metrics, _covers(fine, train_df))
    if kind not in ("rft", "grpo"):
        raise ValueError(f"baseline must be one of sft, oracle, rft, grpo, got {kind!r}")
    shards = [read_parquet(p, C.INITIAL_SAMPLES) for p in samples]
    n_vocab = vocab_size(initial, pi.tokenizer)
    for path, shard in zip(samples, shards, strict=True):
        check_token_ids(shard, "completion_token_ids", n_vocab, path, str(initial))
    s = pd.concat(shards, ignore_index=True)
    if kind == "grpo":
        kept = s.assign(weight=grpo_weights(s["correct"], s["question_id"]))
        kept = kept[kept["weight"] > 0]
    else:
        kept = s[s["correct"]].drop_duplicates(["question_id", "completion"]).assign(weight=1.0)
        cap = params["baselines"]["rft_per_question"]
        if cap is not None:
            rng = np.random.default_rng(params["seed"])
            keep = [
                i for _, g in kept.groupby("question_id", sort=False) for i in rng.permutation(g.index.to_numpy())[:cap]
            ]
            kept = kept.loc[sorted(keep)]
    end = pi.end_id
    rows = pd.DataFrame(
        {
            "question_id": kept["question_id"],
            "source": "selected",
            "question": kept["question"],
            "prompt": kept["prompt"],
            "trace": kept["trace"],
            # a correct answer cut by the length limit still gets its EOS
            "completion_token_ids": [
                list(c) if len(c) and c[-1] in pi.stop_ids else [*c, end] for c in kept["completion_token_ids"]
            ],
            "weight": kept["weight"],
        }
    )
    return _finish(rows, train_df, pi, params, out, metrics, _covers(kept, train_df))


def _covers(rows: pd.DataFrame, train_df: pd.DataFrame) -> dict:
    """How many training questions a set's own traces cover (the claims report's coverage)."""
    return {"questions_selected": int(rows["question_id"].nunique()), "n_train_questions": len(train_df)}

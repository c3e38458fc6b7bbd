"""Stage ``evaluate``: every model on the held-out split.

Greedy accuracy (one completion per question at temperature 0), avg@n (mean accuracy of n samples
at ``evaluate.temperature``) and unbiased pass@k from the same n samples. Per-sample results go to
Parquet so that any number can be recomputed or sliced later.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from varreason.estimators import pass_at_k
from varreason.generation import sample
from varreason.io import read_parquet, write_json, write_parquet
from varreason.modeling import load_model
from varreason.stages.sample import shard_seed
from varreason.task import extract_answer, is_correct, templates_from_params, trace_check


def evaluate(
    params: dict, model_dir: str | Path, test_path: str | Path, name: str, out: str | Path, metrics_out: str | Path
) -> dict:
    test = read_parquet(test_path, ["question_id", "question", "answer"])
    cfg = params["evaluate"]
    tpl = templates_from_params(params["task"])
    model, tok = load_model(model_dir)
    prompts = [tok(tpl.reasoner(q)).input_ids for q in test["question"]]
    common = dict(
        pad_id=tok.pad_token_id,
        stop_ids=[tok.eos_token_id],
        max_new_tokens=cfg["max_new_tokens"],
        batch_size=cfg["batch_size"],
    )
    greedy = sample(model, prompts, num_samples=1, temperature=0.0, seed=0, desc=f"eval[{name}] greedy", **common)
    sampled = sample(
        model,
        prompts,
        num_samples=cfg["n_samples"],
        temperature=cfg["temperature"],
        seed=shard_seed(params["seed"], 0, 4),
        desc=f"eval[{name}] sampled",
        **common,
    )
    rows = []
    synthetic = params["task"]["source"] == "synthetic"
    for kind, samples in (("greedy", greedy), ("sampled", sampled)):
        for s in samples:
            text = tok.decode(s.token_ids, skip_special_tokens=True)
            predicted = extract_answer(text, tpl.answer_delimiter)
            q = test["question"][s.prompt_index]
            trace = text.split(tpl.answer_delimiter, 1)[0]
            valid, steps = trace_check(q, trace, params["task"]["modulus"]) if synthetic else (None, None)
            rows.append(
                {
                    "question_id": test["question_id"][s.prompt_index],
                    "decoding": kind,
                    "sample_index": s.sample_index,
                    "completion": text,
                    "predicted_answer": predicted,
                    "answer": test["answer"][s.prompt_index],
                    "correct": is_correct(predicted, test["answer"][s.prompt_index]),
                    "trace_valid": valid,
                    "trace_steps": steps,
                    "finish_reason": s.finish_reason,
                }
            )
    df = pd.DataFrame(rows)
    write_parquet(df, out)
    metrics = summarise(df, cfg["pass_k"])
    metrics["model"] = name
    write_json(metrics, metrics_out)
    return metrics


def summarise(df: pd.DataFrame, pass_k: list[int]) -> dict:
    g = df[df["decoding"] == "greedy"]
    s = df[df["decoding"] == "sampled"]
    per_q = s.groupby("question_id")["correct"].agg(["sum", "count"])
    n_q = len(g)
    out = {
        "n_questions": n_q,
        "greedy_acc": float(g["correct"].mean()),
        "greedy_acc_se": float(np.sqrt(g["correct"].mean() * (1 - g["correct"].mean()) / max(n_q, 1))),
        f"avg@{int(per_q['count'].max())}": float(s["correct"].mean()),
    }
    for k in pass_k:
        out[f"pass@{k}"] = float(
            np.mean([pass_at_k(int(n), int(c), k) for c, n in zip(per_q["sum"], per_q["count"], strict=True)])
        )
    if g["trace_valid"].notna().any():
        out["greedy_trace_valid"] = float(g["trace_valid"].astype(float).mean())
        out["greedy_trace_steps"] = float(g["trace_steps"].astype(float).mean())
    return out

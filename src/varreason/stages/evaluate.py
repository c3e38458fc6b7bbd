"""Stage ``evaluate``: every model on the held-out split.

Greedy accuracy (one completion per question at temperature 0), avg@n (mean accuracy of n samples
at ``evaluate.temperature``) and unbiased pass@k from the same n samples. Per-sample results go to
Parquet so that any number can be recomputed or sliced later. A benchmark (``evaluate-benchmark``)
is sampled with its own protocol (``benchmarks.benchmark_settings``: the paper's n, temperature and
new-token limit unless its ``evaluate.benchmarks`` entry replaces them), the test split with
``evaluate.n_samples``, ``evaluate.temperature`` and ``evaluate.max_new_tokens``. Every sample ends
at the end-of-turn token or, where the format closes its answer with a tag (``<|end_of_solution|>``
in the reasoning format), after that tag.

Code benchmarks (LiveCodeBench, HumanEval) run each answer's program in a sandbox
(varreason/sandbox.py) with ``evaluate.code``'s limits and the benchmark's per-test
``timeout_s``, ``evaluate.code.workers`` sandboxes at a time (null: the stage's threads). Each row
keeps its ``verdict`` (pass, fail, timeout, error; the last two count as wrong and are counted
apart in the metrics) and, for code, a short description of its tests instead of the tests
themselves. Metrics are also given per ``group`` (LiveCodeBench's difficulty, MMLU-Pro's category).
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from varreason import columns as C
from varreason import paths as P
from varreason.benchmarks import benchmark_settings, get_spec, load_benchmark
from varreason.chunks import generate_in_parts
from varreason.estimators import pass_at_k
from varreason.generation import SamplingRequest
from varreason.io import InputError, read_parquet, write_json, write_parquet
from varreason.modeling import load_tokenizer
from varreason.prompting import prompter_for
from varreason.resume import JobCheckpoint
from varreason.sandbox import Limits
from varreason.shards import shard_seed
from varreason.task import trace_check
from varreason.verify import verdicts
from varreason.verify_code import VERDICTS


def model_of(name: str, model: str | Path | None) -> str | Path:
    """The checkpoint to evaluate: ``model`` when given, else the run's model called ``name``."""
    if model is not None:
        return model
    if name not in P.EVAL_MODELS:
        raise InputError(f"--name {name!r}: unknown model; pass --model DIR or one of {list(P.EVAL_MODELS)}")
    return P.EVAL_MODELS[name]


def evaluate(
    params: dict, model: str | Path | None, test: str | Path, name: str, out: str | Path, metrics: str | Path
) -> dict:
    """The model on the prepared test split, with ``evaluate``'s sampling settings and the task's verifier.

    ``model`` None: the run's checkpoint of ``name`` (initial, sft, rft, vr-gml, vr-acc).
    """
    test_df = read_parquet(test, C.PREPARED_TEST)
    cfg = params["evaluate"]
    return _evaluate(
        params,
        model_of(name, model),
        test_df.assign(verifier=params["task"]["verifier"]),
        name,
        cfg["n_samples"],
        cfg["temperature"],
        cfg["max_new_tokens"],
        out,
        metrics,
    )


def code_limits(params: dict, timeout_s: float | None) -> Limits:
    """The sandbox limits of ``evaluate.code`` with a benchmark's per-test timeout."""
    cfg = {k: v for k, v in params["evaluate"].get("code", {}).items() if v is not None}
    limits = Limits.from_params(cfg)
    return replace(limits, timeout_s=timeout_s) if timeout_s else limits


def evaluate_benchmark(
    params: dict,
    model: str | Path | None,
    benchmark: str,
    name: str | None,
    out: str | Path,
    metrics: str | Path,
    source: str | None = None,
) -> dict:
    """The model on one benchmark with that benchmark's protocol (n samples, temperature, new-token limit).

    Where the benchmark is: ``source`` (a local file or hub id) when given, else its
    ``evaluate.benchmarks`` entry (a file, a hub id, null for the default hub id, or a mapping
    ``{source, n_samples, temperature, max_new_tokens}`` whose settings replace the protocol's), else
    the default hub id. ``model`` may be any checkpoint (a directory or hub id, nothing trained
    here), ``name`` then defaults to its last path component.
    """
    try:
        get_spec(benchmark)
    except ValueError as e:
        raise InputError(f"--benchmark: {e}") from None
    if name is None and model is None:
        raise InputError("evaluate-benchmark: give --name (a model of this run) or --model (any checkpoint)")
    name = name or P.model_name(model)
    model_dir = model_of(name, model)
    entry = params["evaluate"]["benchmarks"].get(benchmark)
    if source is not None:
        entry = {**entry, "source": source} if isinstance(entry, dict) else source
    source, spec = benchmark_settings(benchmark, entry)
    questions = load_benchmark(benchmark, source, seed=params["seed"], spec=spec).rename(columns={"answer": "gold"})
    return _evaluate(
        params,
        model_dir,
        questions,
        f"{name}/{benchmark}",
        spec.n_samples,
        spec.temperature,
        spec.max_new_tokens,
        out,
        metrics,
        limits=code_limits(params, spec.timeout_s) if spec.verifier == "code" else None,
    )


def _evaluate(
    params: dict,
    model_dir: str | Path,
    questions: pd.DataFrame,
    name: str,
    n_samples: int,
    temperature: float,
    max_new_tokens: int,
    out: str | Path,
    metrics_out: str | Path,
    limits: Limits | None = None,
) -> dict:
    """Greedy and ``n_samples`` sampled completions per question, verified; rows to ``out``, metrics.

    ``limits``: the code sandbox's (code questions only)."""
    test = questions.reset_index(drop=True)
    if "group" not in test:
        test = test.assign(group="")
    checksum = int(pd.util.hash_pandas_object(test.astype(str)).sum())
    what = [name, n_samples, temperature, max_new_tokens, checksum, *([asdict(limits)] if limits else [])]
    job = JobCheckpoint.open(out, f"evaluate[{name}]", params, [model_dir], extra=what)
    cfg = params["evaluate"]
    pi = prompter_for(params, load_tokenizer(model_dir))
    prompts = [pi.encode(pi.reasoner(q)) for q in test["question"]]
    # the greedy and the sampled pass differ only in num_samples, temperature, seed and desc
    greedy_request = SamplingRequest(
        prompts=prompts,
        stop_ids=pi.stop_ids,
        # the answer ends at its closing tag (<|end_of_solution|>) where the format has one
        stop_strings=[pi.fmt.answer_suffix.strip()] if pi.fmt.answer_suffix.strip() else [],
        num_samples=1,
        max_new_tokens=max_new_tokens,
        temperature=0.0,
        seed=0,
        batch_size=cfg["batch_size"],
        desc=f"eval[{name}] greedy",
    )
    sampled_request = replace(
        greedy_request,
        num_samples=n_samples,
        temperature=temperature,
        seed=shard_seed(params["seed"], 0, 4),
        desc=f"eval[{name}] sampled",
    )
    on = dict(
        backend=params["sampling"]["backend"],
        engine=params.get("vllm"),
        tokenizer=pi.tokenizer,
        job=job,
        chunk_prompts=params["checkpoint"]["chunk_prompts"],
    )
    greedy = generate_in_parts(model_dir, greedy_request, name="greedy", **on)
    sampled = generate_in_parts(model_dir, sampled_request, name="sampled", **on)
    samples = [("greedy", s) for s in greedy] + [("sampled", s) for s in sampled]
    texts = [pi.tokenizer.decode(s.token_ids, skip_special_tokens=True) for _, s in samples]
    split = [pi.split(t) for t in texts]
    kinds = [test["verifier"][s.prompt_index] for _, s in samples]
    code = "code" in kinds
    workers = (cfg.get("code") or {}).get("workers") or torch.get_num_threads()
    found = verdicts(
        [test["gold"][s.prompt_index] for _, s in samples],
        [a for _, a in split],  # the solution section; for code, its last code block is the program
        kind=kinds,
        workers=workers if code else 1,
        code_limits=limits,
    )
    shown = {i: describe_code_gold(g) for i, g in enumerate(test["gold"]) if test["verifier"][i] == "code"}
    synthetic = params["task"]["source"] == "synthetic"
    rows = []
    for (kind, s), text, (trace, predicted), verdict in zip(samples, texts, split, found, strict=True):
        q = test["question"][s.prompt_index]
        valid, steps = trace_check(q, trace, params["task"]["modulus"]) if synthetic else (None, None)
        rows.append(
            {
                "question_id": test["question_id"][s.prompt_index],
                "decoding": kind,
                "sample_index": s.sample_index,
                "completion": text,
                "predicted_answer": predicted,
                "answer": shown.get(s.prompt_index, test["gold"][s.prompt_index]),
                "correct": verdict == "pass",
                "verdict": verdict,
                "group": test["group"][s.prompt_index],
                "trace_valid": valid,
                "trace_steps": steps,
                "finish_reason": s.finish_reason,
            }
        )
    df = pd.DataFrame(rows)
    write_parquet(df, out)
    metrics = summarise(df, sorted({*(k for k in cfg["pass_k"] if k <= n_samples), n_samples}), by_group=True)
    metrics["model"] = name
    write_json(metrics, metrics_out)
    job.finish()
    return metrics


def describe_code_gold(gold: str) -> str:
    """What a code question's gold holds, in a few words (the tests themselves can be megabytes)."""
    g = json.loads(gold)
    fn = f" {g['fn_name']}" if g.get("fn_name") else ""
    return f"{len(g['tests'])} {g['style']}{fn} test(s)"


def _accuracy(df: pd.DataFrame, pass_k: list[int]) -> dict:
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
    return out


def summarise(df: pd.DataFrame, pass_k: list[int], by_group: bool = False) -> dict:
    """Greedy accuracy (± SE), avg@n and pass@k; with ``by_group``, verdict counts per decoding and
    the same accuracies per group where the rows have groups."""
    out = _accuracy(df, pass_k)
    g = df[df["decoding"] == "greedy"]
    if g["trace_valid"].notna().any():
        out["greedy_trace_valid"] = float(g["trace_valid"].astype(float).mean())
        out["greedy_trace_steps"] = float(g["trace_steps"].astype(float).mean())
    if by_group and "verdict" in df:
        out["verdicts"] = {
            d: {v: int((df[df["decoding"] == d]["verdict"] == v).sum()) for v in VERDICTS}
            for d in ("greedy", "sampled")
        }
    if by_group and "group" in df and (df["group"] != "").any():
        out["groups"] = {str(k): _accuracy(part, pass_k) for k, part in df.groupby("group", sort=True)}
    return out

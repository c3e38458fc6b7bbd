"""Stages ``score`` and ``rollout`` (per shard): what the weights need, from the sampled token ids.

score: per-token log-probs of each trace under pi_0 (reasoner prompt) and under q (posterior
prompt) on the *same* token ids, and of the reference answer under pi_0 after the trace.
rollout (Acc only): M answers sampled from pi_0 after each trace, each checked by the verifier.
A trace that did not end at the answer delimiter gets no answer log-probs and no rollouts; the
weights stage gives it weight zero.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from varreason.generation import sample
from varreason.io import read_parquet, write_parquet
from varreason.logprobs import score_completions
from varreason.modeling import load_model
from varreason.stages.sample import shard_seed
from varreason.task import is_correct, templates_from_params

TRACE_COLUMNS = ["question_id", "sample_index", "question", "answer", "prompt", "trace_token_ids", "finish_reason"]


def score(
    params: dict, traces_path: str | Path, initial_dir: str | Path, posterior_dir: str | Path, out: str | Path
) -> pd.DataFrame:
    df = read_parquet(traces_path, TRACE_COLUMNS)
    tpl = templates_from_params(params["task"])
    bs = params["scoring"]["batch_size"]
    traces = [list(t) for t in df["trace_token_ids"]]

    pi_model, pi_tok = load_model(initial_dir)
    pi_prompts = [pi_tok(tpl.reasoner(q)).input_ids for q in df["question"]]
    ok = (df["finish_reason"] == "stop").tolist()
    answer_ids = [pi_tok(a).input_ids for a in df["answer"]]
    # one pass of pi_0 over trace + answer gives both: a causal model's trace log-probs do not
    # depend on the tokens after them
    both = score_completions(
        pi_model,
        pi_prompts,
        [t + a if good else t for t, a, good in zip(traces, answer_ids, ok, strict=True)],
        pi_tok.pad_token_id,
        bs,
        desc="score[pi_0]",
    )
    prior_logps = [lp[: len(t)] for lp, t in zip(both, traces, strict=True)]
    answer_logps = [lp[len(t) :] if good else [] for lp, t, good in zip(both, traces, ok, strict=True)]
    del pi_model

    q_prompts_text = df["prompt"].tolist()
    if Path(posterior_dir).resolve() == Path(initial_dir).resolve() and q_prompts_text == [
        tpl.reasoner(q) for q in df["question"]
    ]:
        # the proposal is pi_0 itself (no-hint ablation): q's pass would repeat pi_0's exactly
        posterior_logps = prior_logps
    else:
        q_model, q_tok = load_model(posterior_dir)
        q_prompts = [q_tok(p).input_ids for p in q_prompts_text]
        posterior_logps = score_completions(q_model, q_prompts, traces, q_tok.pad_token_id, bs, desc="score[q]")

    out_df = df.assign(
        prior_logps=prior_logps,
        posterior_logps=posterior_logps,
        answer_token_ids=answer_ids,
        answer_logps=answer_logps,
    )
    write_parquet(out_df, out)
    return out_df


def rollout(
    params: dict, traces_path: str | Path, initial_dir: str | Path, shard: int, out: str | Path
) -> pd.DataFrame:
    """M answers per trace from pi_0(. | x, z); verdicts and acc per trace."""
    df = read_parquet(traces_path, TRACE_COLUMNS)
    cfg = params["rollout"]
    tpl = templates_from_params(params["task"])
    model, tok = load_model(initial_dir)
    idx = [i for i, f in enumerate(df["finish_reason"]) if f == "stop"]
    prompts = [tok(tpl.reasoner(df["question"][i])).input_ids + list(df["trace_token_ids"][i]) for i in idx]
    samples = sample(
        model,
        prompts,
        pad_id=tok.pad_token_id,
        stop_ids=[tok.eos_token_id],
        num_samples=cfg["m"],
        max_new_tokens=cfg["max_answer_tokens"],
        temperature=cfg["temperature"],
        seed=shard_seed(params["seed"], shard, 3),
        batch_size=cfg["batch_size"],
        desc=f"rollout[{shard}]",
    )
    answers: list[list[str]] = [[] for _ in range(len(df))]
    for s in samples:
        answers[idx[s.prompt_index]].append(tok.decode(s.token_ids, skip_special_tokens=True).strip())
    verdicts = [[is_correct(a, ref) for a in ans] for ans, ref in zip(answers, df["answer"], strict=True)]
    out_df = df[["question_id", "sample_index"]].assign(
        rollout_answers=answers,
        rollout_verdicts=verdicts,
        acc=[sum(v) / len(v) if v else 0.0 for v in verdicts],
    )
    write_parquet(out_df, out)
    return out_df

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

from varreason import columns as C
from varreason.chunks import generate_in_parts, score_in_parts
from varreason.generation import SamplingRequest
from varreason.io import check_token_ids, read_parquet, write_parquet
from varreason.modeling import load_tokenizer, vocab_size
from varreason.prompting import prompter_for
from varreason.resume import JobCheckpoint
from varreason.shards import shard_seed
from varreason.verify import verify_many


def score(
    params: dict, traces: str | Path, initial: str | Path, posterior: str | Path, out: str | Path
) -> pd.DataFrame:
    """Per-token log-probs of each trace under pi_0 and q, and of the reference answer under pi_0."""
    df = read_parquet(traces, C.POSTERIOR_TRACES)
    job = JobCheckpoint.open(out, f"score[{Path(out).name}]", params, [traces, initial, posterior])
    rows_per_part = params["checkpoint"]["chunk_rows"]
    backend, bs = params["sampling"]["backend"], params["scoring"]["batch_size"]
    batch_tokens = params["scoring"].get("batch_tokens")  # optional: older params files lack it
    fused = bool(params["scoring"].get("compile", False))  # optional too
    trace_ids = [list(t) for t in df["trace_token_ids"]]

    pi = prompter_for(params, load_tokenizer(initial))
    # a corpus from another tokenizer fails here, naming the row, before any model runs
    check_token_ids(df, "trace_token_ids", vocab_size(initial, pi.tokenizer), traces, str(initial))
    pi_texts = [pi.reasoner(q) for q in df["question"]]
    pi_prompts = [pi.encode(t) for t in pi_texts]
    ok = (df["finish_reason"] == "stop").tolist()
    answer_ids = [pi.encode(pi.answer_text(a)) for a in df["answer"]]
    # one pass of pi_0 over trace + answer gives both: a causal model's trace log-probs do not
    # depend on the tokens after them
    both = score_in_parts(
        initial,
        pi_prompts,
        [t + a if good else t for t, a, good in zip(trace_ids, answer_ids, ok, strict=True)],
        backend=backend,
        engine=params.get("vllm"),
        pad_id=pi.tokenizer.pad_token_id,
        batch_size=bs,
        batch_tokens=batch_tokens,
        compile_body=fused,
        desc="score[pi_0]",
        job=job,
        name="prior",
        chunk_rows=rows_per_part,
    )
    prior_logps = [lp[: len(t)] for lp, t in zip(both, trace_ids, strict=True)]
    answer_logps = [lp[len(t) :] if good else [] for lp, t, good in zip(both, trace_ids, ok, strict=True)]

    q_prompts_text = df["prompt"].tolist()
    if Path(posterior).resolve() == Path(initial).resolve() and q_prompts_text == pi_texts:
        # the proposal is pi_0 itself (no-hint ablation): q's pass would repeat pi_0's exactly
        posterior_logps = prior_logps
    elif params["scoring"]["posterior_from_samples"]:
        # the sampler recorded log q of every sampled token (raw, untempered): no second pass
        posterior_logps = [list(lp) for lp in df["sample_logps"]]
    else:
        q = prompter_for(params, load_tokenizer(posterior))
        check_token_ids(df, "trace_token_ids", vocab_size(posterior, q.tokenizer), traces, str(posterior))
        q_prompts = [q.encode(p) for p in q_prompts_text]
        posterior_logps = score_in_parts(
            posterior,
            q_prompts,
            trace_ids,
            backend=backend,
            engine=params.get("vllm"),
            pad_id=q.tokenizer.pad_token_id,
            batch_size=bs,
            batch_tokens=batch_tokens,
            compile_body=fused,
            desc="score[q]",
            job=job,
            name="posterior",
            chunk_rows=rows_per_part,
        )

    out_df = df.assign(
        prior_logps=prior_logps,
        posterior_logps=posterior_logps,
        answer_token_ids=answer_ids,
        answer_logps=answer_logps,
    )
    write_parquet(out_df, out)
    job.finish()
    return out_df


def rollout(params: dict, traces: str | Path, initial: str | Path, shard: int, out: str | Path) -> pd.DataFrame:
    """M answers per trace from pi_0(. | x, z); verdicts and acc per trace."""
    df = read_parquet(traces, C.POSTERIOR_TRACES)
    job = JobCheckpoint.open(out, f"rollout[{shard}]", params, [traces, initial])
    cfg = params["rollout"]
    pi = prompter_for(params, load_tokenizer(initial))
    check_token_ids(df, "trace_token_ids", vocab_size(initial, pi.tokenizer), traces, str(initial))
    idx = [i for i, f in enumerate(df["finish_reason"]) if f == "stop"]
    prompts = [pi.encode(pi.reasoner(df["question"][i])) + list(df["trace_token_ids"][i]) for i in idx]
    request = SamplingRequest(
        prompts=prompts,
        stop_ids=pi.stop_ids,
        # the answer ends at its closing tag (<|end_of_solution|>) where the format has one
        stop_strings=[pi.fmt.answer_suffix.strip()] if pi.fmt.answer_suffix.strip() else [],
        num_samples=cfg["m"],
        max_new_tokens=cfg["max_answer_tokens"],
        temperature=cfg["temperature"],
        seed=shard_seed(params["seed"], shard, 3),
        batch_size=cfg["batch_size"],
        desc=f"rollout[{shard}]",
    )
    samples = generate_in_parts(
        initial,
        request,
        backend=params["sampling"]["backend"],
        engine=params.get("vllm"),
        tokenizer=pi.tokenizer,
        job=job,
        name="rollouts",
        chunk_prompts=params["checkpoint"]["chunk_prompts"],
    )
    answers: list[list[str]] = [[] for _ in range(len(df))]
    for s in samples:
        answers[idx[s.prompt_index]].append(pi.tokenizer.decode(s.token_ids, skip_special_tokens=True).strip())
    # the rollout continues after the delimiter: put it back so the split finds the answer section
    flat = [(i, a) for i, ans in enumerate(answers) for a in ans]
    predicted = [pi.split(pi.fmt.answer_delimiter + a)[1] for _, a in flat]
    flat_verdicts = verify_many([df["gold"][i] for i, _ in flat], predicted, kind=params["task"]["verifier"])
    verdicts: list[list[bool]] = [[] for _ in range(len(df))]
    for (i, _), v in zip(flat, flat_verdicts, strict=True):
        verdicts[i].append(v)
    out_df = df[["question_id", "sample_index"]].assign(
        rollout_answers=answers,
        rollout_verdicts=verdicts,
        acc=[sum(v) / len(v) if v else 0.0 for v in verdicts],
    )
    write_parquet(out_df, out)
    job.finish()
    return out_df

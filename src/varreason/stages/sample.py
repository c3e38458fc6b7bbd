"""Sampling stages, sharded: ``sample_posterior`` (K traces per question from q given the hint)
and ``sample_initial`` (K full completions per question from pi_0, for the RFT baseline).

Shard ``s`` of ``n`` holds the train rows whose index is ``s`` mod ``n``; its seed depends only on
the params seed and ``s``, so a shard always yields the same traces on CPU.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from varreason.generation import sample
from varreason.io import read_parquet, read_shards, write_parquet
from varreason.modeling import load_model
from varreason.task import extract_answer, is_correct, templates_from_params


def shard_rows(df: pd.DataFrame, shard: int, shards: int) -> pd.DataFrame:
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} is not in 0..{shards - 1}")
    return df.iloc[shard::shards].reset_index(drop=True)


def _shard_questions(params: dict, train_path: str | Path, shard: int) -> pd.DataFrame:
    df = read_parquet(train_path, ["question_id", "question", "answer"])
    return shard_rows(df, shard, params["sampling"]["shards"])


def own_accuracy(initial_samples: list[str | Path]) -> pd.Series:
    """pi_0's accuracy on each training question over its own samples (sample_initial's shards).

    The difficulty of a question for the claims report and ``varreason traces``.
    """
    own = read_shards(initial_samples, ["question_id", "correct"])
    return own.groupby("question_id")["correct"].mean().astype(float)


def shard_seed(seed: int, shard: int, stream: int) -> int:
    """Distinct, stable seeds per (run seed, shard, stream)."""
    return (seed * 1_000_003 + shard * 10_007 + stream * 101) % (2**31)


def _generate(
    model_dir, prompts_text: list[str], params: dict, seed: int, stop: str, max_new: int, temperature: float, desc: str
):
    model, tokenizer = load_model(model_dir)
    cfg = params["sampling"]
    prompt_ids = [tokenizer(p).input_ids for p in prompts_text]
    stop_ids = [tokenizer.eos_token_id] + ([tokenizer.convert_tokens_to_ids(stop)] if stop else [])
    samples = sample(
        model,
        prompt_ids,
        pad_id=tokenizer.pad_token_id,
        stop_ids=stop_ids,
        num_samples=cfg["k"],
        max_new_tokens=max_new,
        temperature=temperature,
        seed=seed,
        batch_size=cfg["batch_size"],
        desc=desc,
    )
    return tokenizer, prompt_ids, samples


def _identity(df: pd.DataFrame, prompts: list[str], s, shard: int) -> dict:
    """The columns that say where a sample came from (both corpora start with them)."""
    i = s.prompt_index
    return {
        "question_id": df["question_id"][i],
        "sample_index": s.sample_index,
        "seed": s.seed,
        "shard": shard,
        "question": df["question"][i],
        "answer": df["answer"][i],
        "prompt": prompts[i],
    }


def sample_posterior(
    params: dict, train_path: str | Path, posterior_dir: str | Path, shard: int, out: str | Path
) -> pd.DataFrame:
    """K traces per question of this shard from q(z | x, y'), stopped at the answer delimiter.

    With ``sampling.hint`` false the prompt is the reasoner's (no answer): given pi_0 as the
    "posterior", that samples pi_0's own traces, and the log-ratio of every trace is exactly zero.
    """
    df = _shard_questions(params, train_path, shard)
    tpl = templates_from_params(params["task"])
    if params["sampling"]["hint"]:
        prompts = [tpl.posterior(q, a) for q, a in zip(df["question"], df["answer"], strict=True)]
    else:
        prompts = [tpl.reasoner(q) for q in df["question"]]
    seed = shard_seed(params["seed"], shard, 1)
    tokenizer, prompt_ids, samples = _generate(
        posterior_dir,
        prompts,
        params,
        seed,
        tpl.answer_delimiter,
        params["sampling"]["max_trace_tokens"],
        params["sampling"]["temperature"],
        f"sample_posterior[{shard}]",
    )
    delim = tokenizer.convert_tokens_to_ids(tpl.answer_delimiter)
    rows = []
    for s in samples:
        ids = s.token_ids
        body = ids[:-1] if s.finish_reason == "stop" else ids
        rows.append(
            {
                **_identity(df, prompts, s, shard),
                "trace": tokenizer.decode(body, skip_special_tokens=True),
                "trace_token_ids": ids,
                # "stop" only when the trace ended at the answer delimiter (EOS before it is malformed)
                "finish_reason": "stop"
                if ids and ids[-1] == delim
                else ("eos" if s.finish_reason == "stop" else "length"),
                "prompt_length": len(prompt_ids[s.prompt_index]),
                "trace_length": len(ids),
                "sample_logps": s.logps,
            }
        )
    out_df = pd.DataFrame(rows)
    write_parquet(out_df, out)
    return out_df


def sample_initial(
    params: dict, train_path: str | Path, initial_dir: str | Path, shard: int, out: str | Path
) -> pd.DataFrame:
    """K full completions (trace, delimiter, answer) per question from pi_0, each verified."""
    df = _shard_questions(params, train_path, shard)
    tpl = templates_from_params(params["task"])
    prompts = [tpl.reasoner(q) for q in df["question"]]
    max_new = params["sampling"]["max_trace_tokens"] + params["rollout"]["max_answer_tokens"] + 1
    tokenizer, prompt_ids, samples = _generate(
        initial_dir,
        prompts,
        params,
        shard_seed(params["seed"], shard, 2),
        "",
        max_new,
        params["sampling"]["initial_temperature"],
        f"sample_initial[{shard}]",
    )
    rows = []
    for s in samples:
        text = tokenizer.decode(s.token_ids, skip_special_tokens=True)
        predicted = extract_answer(text, tpl.answer_delimiter)
        reference = df["answer"][s.prompt_index]
        rows.append(
            {
                **_identity(df, prompts, s, shard),
                "completion": text,
                "completion_token_ids": s.token_ids,
                "trace": text.split(tpl.answer_delimiter, 1)[0],
                "finish_reason": s.finish_reason,
                "prompt_length": len(prompt_ids[s.prompt_index]),
                "completion_length": len(s.token_ids),
                "sample_logps": s.logps,
                "predicted_answer": predicted,
                "correct": is_correct(predicted, reference),
            }
        )
    out_df = pd.DataFrame(rows)
    write_parquet(out_df, out)
    return out_df

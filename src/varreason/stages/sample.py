"""Sampling stages, sharded: ``sample_posterior`` (K traces per question from q given the hint)
and ``sample_initial`` (K full completions per question from pi_0, for the RFT baseline).

Shards and their seeds: varreason/shards.py (a shard always yields the same traces on CPU).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from varreason.chunks import generate_in_parts
from varreason.generation import SamplingRequest
from varreason.io import read_parquet, write_parquet
from varreason.modeling import load_tokenizer
from varreason.prompting import Prompter, prompter_for
from varreason.resume import JobCheckpoint
from varreason.shards import shard_rows, shard_seed
from varreason.verify import verify_many


def _shard_questions(params: dict, train: str | Path, shard: int) -> pd.DataFrame:
    df = read_parquet(train, ["question_id", "question", "answer", "gold"])
    return shard_rows(df, shard, params["sampling"]["shards"])


def _generate(
    model_dir,
    prompter: Prompter,
    prompts_text: list[str],
    params: dict,
    seed: int,
    stop_at_delimiter: bool,
    max_new: int,
    temperature: float,
    desc: str,
    job: JobCheckpoint,
):
    """K samples per prompt text; stopped at the trace delimiter or at the end of the completion.

    Sampled in parts of ``checkpoint.chunk_prompts`` questions, each saved in ``job``'s folder.
    """
    cfg = params["sampling"]
    prompt_ids = [prompter.encode(p) for p in prompts_text]
    stop_ids, stop_strings = list(prompter.stop_ids), []
    if stop_at_delimiter:
        if prompter.delimiter_id is not None:
            stop_ids.append(prompter.delimiter_id)
        else:
            stop_strings.append(prompter.fmt.answer_delimiter)
    request = SamplingRequest(
        prompts=prompt_ids,
        stop_ids=stop_ids,
        stop_strings=stop_strings,
        num_samples=cfg["k"],
        max_new_tokens=max_new,
        temperature=temperature,
        seed=seed,
        batch_size=cfg["batch_size"],
        desc=desc,
    )
    samples = generate_in_parts(
        model_dir,
        request,
        backend=cfg["backend"],
        engine=params.get("vllm"),
        tokenizer=prompter.tokenizer,
        job=job,
        name="samples",
        chunk_prompts=params["checkpoint"]["chunk_prompts"],
    )
    return prompt_ids, samples


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
        "gold": df["gold"][i],
        "prompt": prompts[i],
    }


def sample_posterior(
    params: dict, train: str | Path, posterior: str | Path, shard: int, out: str | Path
) -> pd.DataFrame:
    """K traces per question of this shard from q(z | x, y'), stopped at the answer delimiter.

    With ``sampling.hint`` false the prompt is the reasoner's (no answer): given pi_0 as the
    "posterior", that samples pi_0's own traces, and the log-ratio of every trace is exactly zero.
    """
    df = _shard_questions(params, train, shard)
    job = JobCheckpoint.open(out, f"sample_posterior[{shard}]", params, [train, posterior])
    prompter = prompter_for(params, load_tokenizer(posterior))
    if params["sampling"]["hint"]:
        prompts = [prompter.posterior(q, a) for q, a in zip(df["question"], df["answer"], strict=True)]
    else:
        prompts = [prompter.reasoner(q) for q in df["question"]]
    seed = shard_seed(params["seed"], shard, 1)
    prompt_ids, samples = _generate(
        posterior,
        prompter,
        prompts,
        params,
        seed,
        True,
        params["sampling"]["max_trace_tokens"],
        params["sampling"]["temperature"],
        f"sample_posterior[{shard}]",
        job,
    )
    rows = []
    for s in samples:
        ids = s.token_ids
        text = prompter.tokenizer.decode(ids, skip_special_tokens=True)
        # "stop" only when the trace ended at a complete answer delimiter (EOS before it is malformed)
        ended = prompter.trace_cut(ids) == len(ids)
        rows.append(
            {
                **_identity(df, prompts, s, shard),
                "trace": prompter.split(text)[0],
                "trace_token_ids": ids,
                "finish_reason": "stop" if ended else ("eos" if s.finish_reason == "stop" else "length"),
                "prompt_length": len(prompt_ids[s.prompt_index]),
                "trace_length": len(ids),
                "sample_logps": s.logps,
            }
        )
    out_df = pd.DataFrame(rows)
    write_parquet(out_df, out)
    job.finish()
    return out_df


def sample_initial(params: dict, train: str | Path, initial: str | Path, shard: int, out: str | Path) -> pd.DataFrame:
    """K full completions (trace, delimiter, answer) per question from pi_0, each verified."""
    df = _shard_questions(params, train, shard)
    job = JobCheckpoint.open(out, f"sample_initial[{shard}]", params, [train, initial])
    prompter = prompter_for(params, load_tokenizer(initial))
    prompts = [prompter.reasoner(q) for q in df["question"]]
    max_new = params["sampling"]["max_trace_tokens"] + params["rollout"]["max_answer_tokens"] + 1
    prompt_ids, samples = _generate(
        initial,
        prompter,
        prompts,
        params,
        shard_seed(params["seed"], shard, 2),
        False,
        max_new,
        params["sampling"]["initial_temperature"],
        f"sample_initial[{shard}]",
        job,
    )
    rows = []
    texts = [prompter.tokenizer.decode(s.token_ids, skip_special_tokens=True) for s in samples]
    split = [prompter.split(t) for t in texts]
    verdicts = verify_many(
        [df["gold"][s.prompt_index] for s in samples], [a for _, a in split], kind=params["task"]["verifier"]
    )
    for s, text, (trace, predicted), correct in zip(samples, texts, split, verdicts, strict=True):
        rows.append(
            {
                **_identity(df, prompts, s, shard),
                "completion": text,
                "completion_token_ids": s.token_ids,
                "trace": trace,
                "finish_reason": s.finish_reason,
                "prompt_length": len(prompt_ids[s.prompt_index]),
                "completion_length": len(s.token_ids),
                "sample_logps": s.logps,
                "predicted_answer": predicted,
                "correct": correct,
            }
        )
    out_df = pd.DataFrame(rows)
    write_parquet(out_df, out)
    job.finish()
    return out_df

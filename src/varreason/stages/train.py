"""Training stages: train_initial (pi_0), train_posterior (q), train_final (VR) and baselines.

Every arm after pi_0 starts from pi_0's weights and runs the same ``train_final`` budget
(steps x batch size), so the final comparison is at equal compute.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from varreason import columns as C
from varreason import paths as P
from varreason.io import InputError, check_token_ids, read_parquet
from varreason.modeling import (
    freeze_lower_layers,
    initial_model,
    load_model,
    load_tokenizer,
    save_model_atomic,
    vocab_size,
)
from varreason.prompting import prompter_for
from varreason.resume import JobCheckpoint
from varreason.training import Checkpointing, Example, process_state, train_sft


def _train(model, tokenizer, examples, params: dict, cfg: dict, seed: int, out_dir, desc: str, inputs) -> list[dict]:
    """Train (the top ``model.trainable_layers`` layers, or all) and save; under ``accelerate launch``
    every process trains and the main one saves.

    The loss history (train_log.json) is written inside the model folder before its atomic
    rename: a folder that exists is whole. Until then the training state is checkpointed in
    ``<out>.ckpt/`` (params ``checkpoint``; varreason/resume.py), and a restarted job with the same
    inputs and params resumes from the newest checkpoint there.
    """
    state = process_state()
    job = JobCheckpoint.open(out_dir, desc, params, inputs, extra=len(examples), rank=state.process_index)
    job.ensure_dir()
    state.wait_for_everyone()  # rank 0 has kept or cleared the folder
    every = params["checkpoint"]
    checkpointing = Checkpointing(job.dir, every["every_steps"], every["every_minutes"], every["keep"])
    freeze_lower_layers(model, params["model"].get("trainable_layers"))
    trained: dict = {}  # the main process's unwrapped model and full state dict, saved once the history is known
    history, _ = train_sft(
        model,
        examples,
        pad_id=tokenizer.pad_token_id,
        steps=cfg["steps"],
        batch_size=cfg["batch_size"],
        lr=cfg["lr"],
        warmup_frac=cfg["warmup_frac"],
        weight_decay=cfg["weight_decay"],
        seed=seed,
        desc=desc,
        grad_accum_steps=cfg.get("grad_accum_steps", 1),
        save=lambda m, state: trained.update(model=m, state_dict=state),
        checkpointing=checkpointing,
    )
    if state.is_main_process:
        log = {"n_examples": len(examples), "history": history}
        save_model_atomic(trained["model"], tokenizer, out_dir, trained["state_dict"], {P.TRAIN_LOG: log})
        job.finish()
    return history


def _vocab_limit(model_dir) -> int:
    """The token ids ``model_dir`` accepts, checked before its weights are loaded (a fast, clear error)."""
    return vocab_size(model_dir, load_tokenizer(model_dir))


def original_examples(df: pd.DataFrame, tokenizer, params: dict) -> list[Example]:
    """Reasoner prompt -> reference trace, delimiter, answer, end of completion."""
    pi = prompter_for(params, tokenizer)
    return [
        Example(pi.encode(pi.reasoner(q)), pi.encode(pi.completion(t, a)) + [pi.end_id])
        for q, t, a in zip(df["question"], df["trace"], df["answer"], strict=True)
    ]


def train_initial(params: dict, train: str | Path, out: str | Path, base: str | Path | None = None) -> list[dict]:
    """pi_0: SFT of the base model (``base``, else model.pretrained, else the tiny model) on the reference traces."""
    df = read_parquet(train, ["question", "trace", "answer"])
    model, tokenizer = initial_model(params["model"], params["seed"], base)
    examples = original_examples(df, tokenizer, params)
    inputs = [train] + ([base] if base else [])
    return _train(
        model, tokenizer, examples, params, params["train_initial"], params["seed"], out, "train_initial", inputs
    )


def train_posterior(
    params: dict, train: str | Path, initial: str | Path, out: str | Path, base: str | Path | None = None
) -> list[dict]:
    """q(z | x, y'): SFT on posterior prompt (question + reference answer) -> trace + delimiter.

    q starts from pi_0 (``train_posterior.init: initial``) or from the base model (``scratch``).
    """
    df = read_parquet(train, ["question", "trace", "answer"])
    cfg = params["train_posterior"]
    if cfg["init"] == "initial":
        model, tokenizer = load_model(initial)
    else:
        model, tokenizer = initial_model(params["model"], params["seed"] + 1, base)
    q = prompter_for(params, tokenizer)
    examples = [
        Example(q.encode(q.posterior(x, a)), q.encode(t + q.fmt.answer_delimiter))
        for x, t, a in zip(df["question"], df["trace"], df["answer"], strict=True)
    ]
    model.train()
    inputs = [train, initial] + ([base] if base else [])
    return _train(model, tokenizer, examples, params, cfg, params["seed"] + 1, out, "train_posterior", inputs)


def update_posterior(params: dict, weights: str | Path, posterior: str | Path, out: str | Path) -> list[dict]:
    """Round two: q <- q + a forward-KL step, weighted SFT on q's own traces weighted by rho~.

    KL(p(z|x,y) || q) is minimised by maximising E_p[log q(z|x,y')], estimated with the
    self-normalised weights rho~ of the round-one samples; traces of zero weight drop out.
    """
    df = read_parquet(weights, ["question", "answer", "trace_token_ids", "log_weight", "weight"])
    live = df[np.isfinite(df["log_weight"]) & (df["weight"] > 0)]
    if live.empty:
        raise InputError(f"{weights}: no trace has a positive weight; nothing to update q with")
    check_token_ids(df, "trace_token_ids", _vocab_limit(posterior), weights, str(posterior))
    model, tokenizer = load_model(posterior)
    qp = prompter_for(params, tokenizer)
    examples = [
        Example(qp.encode(qp.posterior(q, a)), [int(t) for t in z], float(w))
        for q, a, z, w in zip(live["question"], live["answer"], live["trace_token_ids"], live["weight"], strict=True)
    ]
    model.train()
    cfg = params["update_posterior"]
    return _train(
        model, tokenizer, examples, params, cfg, params["seed"] + 3, out, "update_posterior", [weights, posterior]
    )


def final_examples(df: pd.DataFrame, tokenizer, source: str | Path) -> list[Example]:
    """Examples from a final-set Parquet (see build_final); completions are stored token ids."""
    bad = df.index[~df["weight"].apply(lambda w: w == w and w >= 0)].tolist()
    if bad:
        raise InputError(f"{source}: row {bad[0]}: field 'weight' must be a finite number >= 0")
    return [
        Example(tokenizer(p, add_special_tokens=False).input_ids, [int(t) for t in c], float(w))
        for p, c, w in zip(df["prompt"], df["completion_token_ids"], df["weight"], strict=True)
    ]


def train_final(
    params: dict, final_set: str | Path, initial: str | Path, out: str | Path, seed_offset: int = 2
) -> list[dict]:
    """Weighted SFT of pi_0 on a final training set (VR selections, or a baseline's set)."""
    df = read_parquet(final_set, C.FINAL_SET)
    check_token_ids(df, "completion_token_ids", _vocab_limit(initial), final_set, str(initial))
    model, tokenizer = load_model(initial)
    examples = final_examples(df, tokenizer, final_set)
    model.train()
    torch.manual_seed(params["seed"] + seed_offset)
    return _train(
        model,
        tokenizer,
        examples,
        params,
        params["train_final"],
        params["seed"] + seed_offset,
        out,
        f"train_final[{Path(out).name}]",
        [final_set, initial],
    )

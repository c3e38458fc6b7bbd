"""Per-token log-probabilities: pure tensor functions plus batched model scoring.

``token_logps`` is gather minus logsumexp, computed in chunks of rows so that a full
(batch, time, vocab) log_softmax is never materialised. ``score_completions`` scores given token
ids (never re-tokenised text) under a causal LM, with either padding side:

- rows are sorted by length (longest first) and packed into batches of at most ``batch_size`` rows
  and ``max_batch_tokens`` padded tokens (rows x width), so padding is small and the first batch
  is the largest (a budget that does not fit fails at once, not after an hour);
- the decoder body runs on the batch for its hidden states; the output layer is applied only at the
  positions that predict a completion token, ``chunk_tokens`` positions at a time, and each chunk
  reduces to log p = logit[target] - logsumexp(logits) in float32. Peak memory is then the body's
  activations for one batch plus one (chunk, vocab) block: it does not grow with sequence length x
  vocabulary, and prompt positions never pay for the output layer.

A model whose logits are not ``output_embeddings(body(...)[0])`` (a final soft-cap, a logit scale)
is detected by a one-off probe and scored from its full logits instead, chunked the same way.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import torch

from varreason.cpu_memory import retain_freed_memory
from varreason.progress import progress

# Output-layer work sizes by device. CPU: 1024 positions at a time, logits made 2048 vocabulary
# rows at a time (an 8 MB float32 block that stays in cache while it is reduced); a GPU: the whole
# vocabulary at once, as many positions as keep a chunk's float32 logits at 2**28 elements (1 GiB).
CPU_CHUNK_TOKENS, CPU_VOCAB_BLOCK = 1024, 2048
GPU_CHUNK_ELEMENTS = 2**28


def default_chunking(device: torch.device, vocab: int) -> tuple[int, int | None]:
    """(chunk_tokens, vocab_block) for a model on ``device`` with ``vocab`` output rows."""
    if device.type == "cuda":
        return max(1, GPU_CHUNK_ELEMENTS // max(vocab, 1)), None
    return CPU_CHUNK_TOKENS, CPU_VOCAB_BLOCK if vocab > CPU_VOCAB_BLOCK else None


def token_logps(logits: torch.Tensor, targets: torch.Tensor, chunk_rows: int = 64) -> torch.Tensor:
    """log p(targets[b, t]) under logits[b, t, :], shape (B, T); chunked over rows."""
    out = torch.empty(targets.shape, dtype=torch.float32, device=logits.device)
    for s in range(0, logits.shape[0], chunk_rows):
        chunk = logits[s : s + chunk_rows].float()
        picked = chunk.gather(-1, targets[s : s + chunk_rows].unsqueeze(-1)).squeeze(-1)
        out[s : s + chunk_rows] = picked - torch.logsumexp(chunk, dim=-1)
    return out


def hidden_logps(
    hidden: torch.Tensor,
    head: torch.nn.Module,
    targets: torch.Tensor,
    chunk_tokens: int,
    vocab_block: int | None = None,
) -> torch.Tensor:
    """log p(targets[n]) for hidden states (N, H) through the output layer ``head``, shape (N,) float32.

    ``chunk_tokens`` positions at a time. With ``vocab_block`` (and a linear ``head``) the logits of
    a chunk are made ``vocab_block`` vocabulary rows at a time and reduced while still in cache:
    each block's logsumexp is merged into a running one (kept in float64, so merging many blocks
    adds no rounding), and the target's logit is read from the block that holds it. Either way at
    most one (chunk, block) slice of logits exists at once.
    """
    out = torch.empty(targets.shape, dtype=torch.float32, device=hidden.device)
    weight = getattr(head, "weight", None)
    tile = (
        vocab_block is not None
        and isinstance(head, torch.nn.Linear)
        and weight is not None
        and vocab_block < weight.shape[0]
    )
    for s in range(0, hidden.shape[0], chunk_tokens):
        h, t = hidden[s : s + chunk_tokens], targets[s : s + chunk_tokens]
        if not tile:
            logits = head(h).float()
            out[s : s + chunk_tokens] = logits.gather(-1, t.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, -1)
            continue
        lse = torch.full(t.shape, -torch.inf, dtype=torch.float64, device=h.device)
        picked = torch.zeros(t.shape, dtype=torch.float32, device=h.device)
        for v in range(0, weight.shape[0], vocab_block):
            bias = head.bias[v : v + vocab_block] if head.bias is not None else None
            block = torch.nn.functional.linear(h, weight[v : v + vocab_block], bias).float()
            lse = torch.logaddexp(lse, torch.logsumexp(block, -1).double())
            local = t - v
            here = (local >= 0) & (local < block.shape[1])
            value = block.gather(-1, local.clamp(0, block.shape[1] - 1).unsqueeze(-1)).squeeze(-1)
            picked = torch.where(here, value, picked)
        out[s : s + chunk_tokens] = (picked.double() - lse).float()
    return out


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int, side: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad token-id lists to one tensor; returns (input_ids, attention_mask)."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, s in enumerate(sequences):
        if side == "left":
            ids[i, width - len(s) :] = torch.tensor(s, dtype=torch.long)
            mask[i, width - len(s) :] = 1
        elif side == "right":
            ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
            mask[i, : len(s)] = 1
        else:
            raise ValueError(f"padding side must be 'left' or 'right', got {side!r}")
    return ids, mask


def position_ids_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """Positions that ignore left padding: cumsum(mask) - 1, clamped at 0 on pads."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def token_batches(lengths: Sequence[int], batch_size: int, max_batch_tokens: int | None) -> list[list[int]]:
    """Row indices grouped into batches, longest rows first.

    A batch holds at most ``batch_size`` rows and, when ``max_batch_tokens`` is set, at most that
    many padded tokens (rows x its longest row); a row longer than the budget is a batch alone.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if max_batch_tokens is not None and max_batch_tokens < 1:
        raise ValueError(f"max_batch_tokens must be at least 1 (or None), got {max_batch_tokens}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        b = batches[-1] if batches else None
        # sorted longest first: the batch's width is its first row's length
        if (
            b is not None
            and len(b) < batch_size
            and (max_batch_tokens is None or (len(b) + 1) * lengths[b[0]] <= max_batch_tokens)
        ):
            b.append(i)
        else:
            batches.append([i])
    return batches


_SPLIT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _last_hidden(out) -> torch.Tensor:
    return out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]


@torch.no_grad()
def body_and_head(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module] | None:
    """(decoder body, output layer) when ``model(x).logits`` is exactly ``head(body(x)[0])``, else None.

    Checked once per model on a short input (bit-for-bit), so a model that post-processes its
    logits (Gemma's soft-cap, Cohere's logit scale) falls back to its full logits.
    """
    if model in _SPLIT:
        return _SPLIT[model]
    split = None
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    body = getattr(model, getattr(model, "base_model_prefix", ""), None)
    if isinstance(head, torch.nn.Module) and isinstance(body, torch.nn.Module) and body is not model:
        device = next(model.parameters()).device
        vocab = head.weight.shape[0] if hasattr(head, "weight") else 2
        ids = (torch.arange(5, device=device) % vocab).unsqueeze(0)
        try:
            full = model(input_ids=ids).logits
            mine = head(_last_hidden(body(input_ids=ids, use_cache=False)))
            if full.shape == mine.shape and torch.equal(full, mine):
                split = (body, head)
        except (TypeError, ValueError, AttributeError, RuntimeError):
            split = None
    _SPLIT[model] = split
    return split


_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def compiled_body(body: torch.nn.Module) -> torch.nn.Module:
    """The decoder body under ``torch.compile`` (once per body): fused kernels for its element-wise work.

    transformers runs RMSNorm (with its float32 casts), rotary embeddings, SiLU-and-multiply and the
    residual adds as separate kernels, each a round trip through memory; on a GPU they took ~70% of a
    batch's time at 8k tokens. Inductor fuses each run of them into one kernel around the matmuls.
    ``dynamic=True``: one graph for every batch width and row count, so length-sorted batches do not
    compile again per new length (with or without an attention mask: at most a few graphs). The
    values differ from the unfused path by reduction order only (tests/test_logprobs.py states the
    bound); on a CPU it gains little (matmuls are ~86% of the time there), so it is a GPU setting.
    """
    if body not in _COMPILED:
        _COMPILED[body] = torch.compile(body, dynamic=True)
    return _COMPILED[body]


def _targets(
    prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]], rows: list[int], width: int, side: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, column) of every position that predicts a completion token, in row then token order."""
    r_idx, c_idx = [], []
    for j, i in enumerate(rows):
        p, c = len(prompts[i]), len(completions[i])
        offset = width - p - c if side == "left" else 0
        start = offset + p - 1  # the position whose output predicts the first completion token
        r_idx.extend([j] * c)
        c_idx.extend(range(start, start + c))
    return torch.tensor(r_idx, dtype=torch.long), torch.tensor(c_idx, dtype=torch.long)


@torch.no_grad()
def score_batches(
    prompts: Sequence[Sequence[int]],
    completions: Sequence[Sequence[int]],
    batch_size: int = 256,
    max_batch_tokens: int | None = None,
) -> list[list[int]]:
    """The row indices of each batch ``score_completions`` runs (rows sorted by length; empty
    completions in none). A call cut into parts runs consecutive runs of these batches, so every
    row is scored in the batch it would have been in, with the same float results."""
    todo = [i for i, c in enumerate(completions) if len(c) > 0]
    lengths = [len(prompts[i]) + len(completions[i]) for i in todo]
    return [[todo[j] for j in b] for b in token_batches(lengths, batch_size, max_batch_tokens)]


@torch.no_grad()  # scoring only: no autograd graph holding every layer's activations
def score_completions(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    completions: Sequence[Sequence[int]],
    pad_id: int,
    batch_size: int = 256,
    padding_side: str = "right",
    desc: str = "scoring",
    max_batch_tokens: int | None = None,
    chunk_tokens: int | None = None,
    vocab_block: int | None = None,
    batches: Sequence[Sequence[int]] | None = None,
    compile_body: bool = False,
) -> list[list[float]]:
    """log p(completion_t | prompt, completion_<t) for each completion token.

    ``batches``: run only these batches of ``score_batches`` (a part of the call); other rows get [].
    ``compile_body``: run the decoder body through ``compiled_body`` (fused kernels; a GPU setting).

    Returns one list of floats per row, of the completion's length, in the input order. Batches
    hold at most ``batch_size`` rows and ``max_batch_tokens`` padded tokens (None: no token
    limit), rows sorted by length; ``chunk_tokens`` positions go through the output layer at once,
    its logits made ``vocab_block`` vocabulary rows at a time (0: the whole vocabulary; None for
    either: ``default_chunking`` for the model's device). Every prompt must have at least one token.
    """
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding side must be 'left' or 'right', got {padding_side!r}")
    empty = [i for i, p in enumerate(prompts) if len(p) == 0]
    if empty:
        raise ValueError(f"row {empty[0]}: empty prompt (the first completion token has nothing to condition on)")
    results: list[list[float]] = [[] for _ in prompts]
    if batches is None:
        batches = score_batches(prompts, completions, batch_size, max_batch_tokens)
    if not batches:
        return results
    device = next(model.parameters()).device
    if device.type == "cpu":
        retain_freed_memory()  # batches of large tensors would otherwise page-fault again each time
    split = body_and_head(model)
    if split is not None and compile_body:
        split = (compiled_body(split[0]), split[1])
    head_weight = getattr(split[1], "weight", None) if split is not None else None
    auto_chunk, auto_block = default_chunking(device, head_weight.shape[0] if head_weight is not None else 1)
    chunk_tokens = chunk_tokens or auto_chunk
    vocab_block = auto_block if vocab_block is None else (vocab_block or None)
    for rows in progress(batches, desc=desc, unit="batch"):
        ids, mask = pad_batch([list(prompts[i]) + list(completions[i]) for i in rows], pad_id, padding_side)
        r_idx, c_idx = _targets(prompts, completions, rows, ids.shape[1], padding_side)
        ids, mask = ids.to(device), mask.to(device)
        r_idx, c_idx = r_idx.to(device), c_idx.to(device)
        targets = ids[r_idx, c_idx + 1]
        # rows of one length need no mask: the plain causal path (a fused kernel where there is one)
        kw = dict(
            input_ids=ids, attention_mask=None if bool(mask.all()) else mask, position_ids=position_ids_from_mask(mask)
        )
        if split is not None:
            body, head = split
            hidden = _last_hidden(body(**kw, use_cache=False))[r_idx, c_idx]
            flat = hidden_logps(hidden, head, targets, chunk_tokens, vocab_block)
        else:
            logits = model(**kw).logits
            flat = torch.empty(targets.shape, dtype=torch.float32, device=device)
            for s in range(0, targets.shape[0], chunk_tokens):
                sel = logits[r_idx[s : s + chunk_tokens], c_idx[s : s + chunk_tokens]].float()
                flat[s : s + chunk_tokens] = sel.gather(-1, targets[s : s + chunk_tokens, None]).squeeze(-1) - (
                    torch.logsumexp(sel, dim=-1)
                )
        values = flat.tolist()
        at = 0
        for i in rows:
            results[i] = values[at : at + len(completions[i])]
            at += len(completions[i])
    return results

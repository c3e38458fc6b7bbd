"""Per-token log-probabilities: pure tensor functions plus batched model scoring.

``token_logps`` is gather minus logsumexp, computed in chunks of rows so that a full
(batch, time, vocab) log_softmax is never materialised. ``score_completions`` scores given token
ids (never re-tokenised text) under a causal LM, with either padding side.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from varreason.progress import progress


def token_logps(logits: torch.Tensor, targets: torch.Tensor, chunk_rows: int = 64) -> torch.Tensor:
    """log p(targets[b, t]) under logits[b, t, :], shape (B, T); chunked over rows."""
    out = torch.empty(targets.shape, dtype=torch.float32, device=logits.device)
    for s in range(0, logits.shape[0], chunk_rows):
        chunk = logits[s : s + chunk_rows].float()
        picked = chunk.gather(-1, targets[s : s + chunk_rows].unsqueeze(-1)).squeeze(-1)
        out[s : s + chunk_rows] = picked - torch.logsumexp(chunk, dim=-1)
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


@torch.no_grad()
def score_completions(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    completions: Sequence[Sequence[int]],
    pad_id: int,
    batch_size: int = 256,
    padding_side: str = "right",
    desc: str = "scoring",
) -> list[list[float]]:
    """log p(completion_t | prompt, completion_<t) for each completion token.

    Returns one list of floats per row, of the completion's length.
    """
    results: list[list[float]] = []
    for s in progress(range(0, len(prompts), batch_size), desc=desc, unit="batch"):
        rows = [
            list(p) + list(c) for p, c in zip(prompts[s : s + batch_size], completions[s : s + batch_size], strict=True)
        ]
        ids, mask = pad_batch(rows, pad_id, padding_side)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=position_ids_from_mask(mask)).logits
        # logits at position t predict token t+1
        logps = token_logps(logits[:, :-1], ids[:, 1:])
        width = ids.shape[1]
        for i, (p, c) in enumerate(zip(prompts[s : s + batch_size], completions[s : s + batch_size], strict=True)):
            offset = width - len(p) - len(c) if padding_side == "left" else 0
            start = offset + len(p) - 1  # index in the shifted tensor of the first completion token
            results.append(logps[i, start : start + len(c)].tolist())
    return results

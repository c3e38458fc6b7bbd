import pytest
import torch

from varreason.logprobs import pad_batch, position_ids_from_mask, score_completions, token_logps


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("lengths", [[5], [3, 7, 1], [9, 2, 4, 6]])
def test_token_logps_equal_full_log_softmax(side, lengths):
    torch.manual_seed(sum(lengths))
    vocab = 37
    seqs = [torch.randint(0, vocab, (n,)).tolist() for n in lengths]
    ids, mask = pad_batch(seqs, pad_id=0, side=side)
    logits = torch.randn(ids.shape[0], ids.shape[1], vocab) * 3
    got = token_logps(logits, ids, chunk_rows=2)
    ref = torch.log_softmax(logits.double(), dim=-1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    assert got.shape == ids.shape
    # every real (non-pad) position matches the full log_softmax reference
    assert torch.allclose(got[mask.bool()].double(), ref[mask.bool()], atol=1e-5)


def test_pad_batch_sides_and_positions():
    ids, mask = pad_batch([[1, 2, 3], [4]], pad_id=0, side="left")
    assert ids.tolist() == [[1, 2, 3], [0, 0, 4]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert position_ids_from_mask(mask).tolist() == [[0, 1, 2], [0, 0, 0]]
    ids, mask = pad_batch([[1, 2, 3], [4]], pad_id=9, side="right")
    assert ids.tolist() == [[1, 2, 3], [4, 9, 9]]
    with pytest.raises(ValueError, match="padding side"):
        pad_batch([[1]], 0, "middle")


@pytest.mark.parametrize("side", ["left", "right"])
def test_score_completions_match_unpadded_forward(tiny_model, side):
    torch.manual_seed(1)
    prompts = [[5, 6, 7], [8], [9, 10, 11, 12, 13]]
    completions = [[14, 15], [16, 17, 18, 19], [20]]
    got = score_completions(tiny_model, prompts, completions, pad_id=0, batch_size=2, padding_side=side)
    for p, c, g in zip(prompts, completions, got, strict=True):
        ids = torch.tensor([p + c])
        with torch.no_grad():
            logits = tiny_model(input_ids=ids).logits.double()
        ref = torch.log_softmax(logits[0, :-1], -1).gather(-1, ids[0, 1:, None]).squeeze(-1)[len(p) - 1 :]
        assert len(g) == len(c)
        assert torch.allclose(torch.tensor(g, dtype=torch.double), ref, atol=1e-5)

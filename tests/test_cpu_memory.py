"""retain_freed_memory: repeated scoring calls on CPU stop page-faulting once freed memory stays in the process.

Each case runs in a fresh interpreter (glibc's settings are per process). Page faults are counted by
the kernel (getrusage's minor faults), so the test does not depend on timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="glibc's malloc settings")

SCRIPT = r"""
import json, resource
import torch
from transformers import Qwen3Config, Qwen3ForCausalLM
from varreason.cpu_memory import retain_freed_memory
from varreason.logprobs import score_completions
torch.set_num_threads(2)
torch.manual_seed(0)
cfg = Qwen3Config(vocab_size=8192, hidden_size=512, intermediate_size=1536, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=2, head_dim=128, max_position_embeddings=512, tie_word_embeddings=True)
model = Qwen3ForCausalLM(cfg).eval()
ids = torch.randint(1, 8192, (16, 256), generator=torch.Generator().manual_seed(0)).tolist()
faults, scores = [], None
for _ in range(6):  # batches of 4096 tokens: 25 MB MLP activations, 8 MB logit blocks
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    scores = score_completions(model, [r[:64] for r in ids], [r[64:] for r in ids], pad_id=0, max_batch_tokens=4096)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"faults": faults, "applied": retain_freed_memory(), "score": sum(map(sum, scores))}))
"""


def _run(keep_malloc: bool) -> dict:
    env = {**os.environ, "VARREASON_KEEP_MALLOC": "1" if keep_malloc else "0"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_scoring_stops_page_faulting():
    retained, default = _run(keep_malloc=False), _run(keep_malloc=True)
    print(f"\nminor page faults per call: retained {retained['faults']}, glibc defaults {default['faults']}")
    assert retained["applied"] is True and default["applied"] is False
    first, later = retained["faults"][0], sum(retained["faults"][1:])
    # the first call touches its memory once; the next five reuse it (a few stray faults aside),
    # while with glibc's defaults the same calls keep returning memory and faulting it back in
    assert first > 20_000
    assert later < 0.25 * sum(default["faults"][1:])
    assert retained["score"] == default["score"]  # the allocator changes no result

"""bench/gpu_dag.py at toy size on the CPU: every stage of the DAG runs, is timed and counted, and writes its outputs.

The GPU size (Qwen3-0.6B and 4B shapes, FSDP) needs a CUDA machine; this keeps the same code path working.
"""

import json
import subprocess
import sys
from pathlib import Path

from conftest import REPO

STAGES = [
    "prepare", "train_initial", "train_posterior", "sample_posterior", "score", "weights", "build_final",
    "train_final", "sample_initial", "baselines_rft", "evaluate", "score_large_64", "score_large_256",
]  # fmt: skip
NO_MODEL = {"prepare", "weights", "build_final"}  # they run no model: no FLOPs, no MFU


def test_whole_dag_runs_at_toy_size_and_reports_every_stage(tmp_path):
    out, result = tmp_path / "out", tmp_path / "result.json"
    cmd = [
        sys.executable,
        str(REPO / "bench" / "gpu_dag.py"),
        "--size",
        "toy",
        "--out",
        str(out),
        "--json",
        str(result),
    ]
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]

    table = r.stdout.split("=== ")[-1].splitlines()[2:]  # the final table, after its title and header
    assert [row.split()[0] for row in table[: len(STAGES)]] == STAGES
    for row in table[: len(STAGES)]:
        tokens, seconds, per_s = row.split()[1:4]
        assert int(tokens) > 0 and float(seconds) >= 0 and float(per_s) > 0, row
    assert table[len(STAGES)].startswith("total ")

    got = json.loads(result.read_text())
    assert [s["stage"] for s in got["stages"]] == STAGES
    assert got["size"] == "toy" and got["torch"] and got["transformers"] and got["accelerate"] and got["date"]
    assert got["matmul_flops"] > 1e8 and got["device"]
    # the environment a GPU run sets for in-process FSDP (made on a CPU too, applied only on CUDA)
    assert got["fsdp_env"]["ACCELERATE_USE_FSDP"] == "true" and got["fsdp_env"]["FSDP_VERSION"] == "2"
    assert got["fsdp_env"]["WORLD_SIZE"] == "1" and "no FSDP" in got["training"]
    run = out / "run"
    for s in got["stages"]:
        assert s["tokens"] > 0 and s["seconds"] > 0 and s["peak_gib"] > 0, s
        assert (s["mfu"] is None) == (s["stage"] in NO_MODEL), s
        assert s["mfu"] is None or 0 < s["mfu"] < 1, s
        assert s["outputs"] and all((run / o).exists() for o in s["outputs"]), s
    by = {s["stage"]: s for s in got["stages"]}
    # training counts every example of every step: steps x batch examples of at least a 24-token trace each
    assert by["train_initial"]["tokens"] >= 2 * 2 * 24
    # sampling counts the tokens generated: at most K x questions x the trace limit
    assert 0 < by["sample_posterior"]["tokens"] <= 2 * 4 * got["sample_tokens"]
    # the large model scores each trace twice (pi_0 and q): more tokens than the traces alone
    assert by["score_large_256"]["tokens"] > 2 * 1024

    for model in ("initial", "posterior", "final-gml", "baseline-rft"):
        folder = run / "data" / "models" / model
        assert (folder / "config.json").exists() and (folder / "model.safetensors").exists(), model
        assert json.loads((folder / "train_log.json").read_text())["history"], model
    metrics = json.loads((run / "metrics" / "eval" / "vr-gml.json").read_text())
    assert metrics["model"] == "vr-gml" and metrics["n_questions"] == 2
    weights = json.loads((run / "metrics" / "weights-gml.json").read_text())
    assert weights["n_traces"] == 4 * 2  # 4 questions x K = 2
    assert Path(run / "data" / "traces" / "large" / "scored-256.parquet").exists()

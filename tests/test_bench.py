"""The benchmark scripts run and report numbers that hold together (not their speed: that is theirs to print)."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str) -> str:
    r = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout


def test_score_bench_compares_both_scorers_on_the_embedded_model():
    out = _run(
        "bench/score.py",
        *("--preset", "embedded", "--length", "64", "--tokens", "512", "--repeats", "1"),
        *("--memory-lengths", "64", "128", "--skip-sampling"),
    )
    result = json.loads(out.strip().splitlines()[-1])
    t = result["throughput"]
    assert t["tokens"] == 512 and t["rows"] == 8
    assert 0 < t["diff"] <= 1e-5  # the two scorers agree, and were really compared
    assert t["ours_s"] > 0 and t["ref_s"] > 0 and result["matmul_flops"] > 1e8
    mem = result["memory"]
    assert set(mem) == {"ours@64", "reference@64", "ours@128", "reference@128"}
    # the same token budget at both lengths: half the rows at twice the length
    assert mem["ours@64"]["rows"] == 2 * mem["ours@128"]["rows"]
    assert all(m["peak_mb"] > 0 for m in mem.values())
    assert "speed-up (target >= 3x)" in out and "ours 128 vs 64 (target <= 1.2x)" in out


def test_score_bench_peer_needs_vllm():
    """Without vllm (this venv) item 4 says how to run it and reports nothing."""
    out = _run("bench/score.py", "--skip-throughput", "--skip-memory", "--skip-sampling", "--peer")
    assert "run this with .venv-vllm/bin/python" in out
    assert json.loads(out.strip().splitlines()[-1])["peer"] is None


def test_pipeline_bench_summarizes_a_run(smoke_run):
    work, _ = smoke_run
    tsvs = sorted((work / "benchmarks").rglob("*.tsv"))
    assert tsvs, "the smoke run wrote no benchmark files"
    out = _run("bench/pipeline.py", "--summarize", str(work))
    assert f"{len(tsvs)} benchmarked jobs" in out
    jobs = [line.split()[0] for line in out.splitlines() if line.startswith(("train_initial", "score-0"))]
    assert "train_initial" in jobs and "score-0" in jobs
    # the per-rule table's wall seconds add up to the stated total
    rule_rows = out.split("\nrule ")[1].split("\n\n")[0].strip().splitlines()[1:]
    total = float(out.split(" s of job wall time")[0].split()[-1])
    assert abs(sum(float(r.split()[2]) for r in rule_rows) - total) <= 0.1 * len(rule_rows) + 1


def test_gpu_score_bench_runs_fused_and_unfused_on_a_cpu():
    """bench/gpu_score.py's code at toy size on the CPU: ours, fused (compile_body) and the reference style."""
    out = _run(
        "bench/gpu_score.py",
        *("--device", "cpu", "--preset", "embedded", "--lengths", "64", "--tokens", "256", "--budget", "128"),
        *("--repeats", "1"),
    )
    rows = json.loads(out.strip().splitlines()[-1])["results"]
    assert {r["scorer"] for r in rows} == {"ours", "fused", "reference", "diff"}
    diffs = {r["pair"]: r["max_abs_diff"] for r in rows if r["scorer"] == "diff"}
    assert set(diffs) == {"ours-reference", "fused-ours"}
    assert 0 < diffs["ours-reference"] < 0.1 and diffs["fused-ours"] < 0.1  # bf16 rounding, not a different model
    assert all(r["tokens"] == 256 and r["tokens_per_s"] > 0 for r in rows if r["scorer"] != "diff")
    assert "fused / reference" in out

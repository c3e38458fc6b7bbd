"""`varreason plan`: the cost plan of a params file (src/varreason/cost_plan.py), its numbers recomputed by
hand, its SLURM resources against launch.py and the rules, its throughput table, and its errors."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

from conftest import REPO
from varreason import cost_plan as CP
from varreason.cli import main
from varreason.launch import train_resources
from varreason.params import load_params

PRESET = "workflow/presets/qwen3-4b-bespoke.yaml"
MAIN_STAGES = ["train_initial", "train_posterior", "sample_posterior", "score", "rollout", "sample_initial"]
MAIN_STAGES += ["weights (gml, acc)", "build_final (gml, acc)", "train_final (vr-gml)", "train_final (vr-acc)"]
MAIN_STAGES += ["baselines (sft)", "baselines (rft)", "evaluate (5 models)"]
RATES = yaml.safe_load((REPO / "src" / "varreason" / "throughput.yaml").read_text())


def _table(text: str) -> dict[str, list[str]]:
    """The printed table's rows: stage -> its other cells."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith(("| stage ", "|---")):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def _assumed(name: str) -> float:
    return CP.ASSUMPTIONS[name][0]


@pytest.fixture(scope="module")
def preset_plan() -> str:
    cmd = [sys.executable, "-m", "varreason.cli", "--params", PRESET, "plan", "--gpu", "h100-80gb"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_the_qwen3_preset_prints_a_table_of_every_stage_a_total_and_the_assumptions(preset_plan):
    params = load_params(REPO / PRESET)
    rows = _table(preset_plan)
    benchmarks = [f"evaluate_benchmark {b} (5 models)" for b in params["evaluate"]["benchmarks"]]
    assert list(rows) == [*MAIN_STAGES, *benchmarks, "**total**"]
    assert len(benchmarks) == 8
    assert f"# Cost plan: {PRESET} on h100-80gb (qwen3-4b rates)" in preset_plan
    for name in CP.ASSUMPTIONS:
        assert f"- {name} = " in preset_plan.split("Assumptions")[1]
    for kind in ("train", "generate", "score"):
        assert f"- {kind}: {RATES['h100-80gb']['qwen3-4b'][kind]['tokens_per_s']:,}: estimate: " in preset_plan
    # the total is the sum of the rows, and the sentence under the table says it
    total = sum(float(cells[5].replace(",", "")) for stage, cells in rows.items() if stage != "**total**")
    printed = float(rows["**total**"][5].strip("*").replace(",", ""))
    assert printed == pytest.approx(total, abs=0.1 * len(rows)) and printed > 1000
    assert (
        f"Total: {rows['**total**'][5].strip('*')} GPU-hours on h100-80gb, {rows['**total**'][0]} jobs." in preset_plan
    )


def test_the_numbers_of_the_preset_recomputed_by_hand(preset_plan):
    params = load_params(REPO / PRESET)
    rows, rate = _table(preset_plan), RATES["h100-80gb"]["qwen3-4b"]
    n, k, shards = params["task"]["n_train"], params["sampling"]["k"], params["sampling"]["shards"]
    gpus = params["runtime"]["gpus"]
    prompt, answer, trace = _assumed("prompt_tokens"), _assumed("answer_tokens"), _assumed("trace_tokens")
    assert params["sampling"]["hint"] and _assumed("generation_fill") == 1.0 and gpus == 8

    # sample_posterior: K traces per question to max_trace_tokens, after q's prompt (which shows the answer);
    # one vLLM engine of tensor_parallel_size GPUs computes, and the job holds just those
    tokens = n * k * (prompt + answer + params["sampling"]["max_trace_tokens"])
    engine = (params.get("vllm") or {}).get("tensor_parallel_size", 1)
    hours_per_job = tokens / shards / (rate["generate"]["tokens_per_s"] * engine) / 3600
    jobs, printed_tokens, work, per_s, held_used, gpu_h, per_job = rows["sample_posterior"][:7]
    assert (int(jobs), work, held_used) == (shards, "generate", f"{engine}/{engine}")
    assert printed_tokens == f"{round(tokens):,}" and per_s == f"{rate['generate']['tokens_per_s']:,}"
    assert gpu_h == f"{hours_per_job * shards * engine:,.1f}" and per_job == f"{hours_per_job:,.1f}"

    # train_initial: steps x batch_size examples of prompt + trace + answer, on every GPU it holds
    ti = params["train_initial"]
    tokens = ti["steps"] * ti["batch_size"] * (prompt + trace + answer)
    jobs, printed_tokens, work, _, held_used, gpu_h, per_job, attempts = rows["train_initial"][:8]
    assert (int(jobs), printed_tokens, work, held_used) == (1, f"{round(tokens):,}", "train", f"{gpus}/{gpus}")
    assert gpu_h == f"{tokens / rate['train']['tokens_per_s'] / 3600:,.1f}"
    assert int(attempts) == -(-tokens / rate["train"]["tokens_per_s"] / gpus // (55 * 60))  # 60 min less the 5 min lead

    # score: pi_0's pass over prompt + trace + answer only (q's log-probs were recorded while sampling)
    assert params["scoring"]["posterior_from_samples"]
    tokens = n * k * (prompt + params["sampling"]["max_trace_tokens"] + answer)
    assert rows["score"][1] == f"{round(tokens):,}"


def test_the_slurm_resources_are_launchs_for_the_presets_runtime(preset_plan):
    params = load_params(REPO / PRESET)
    runtime = params["runtime"]
    train = ", ".join(
        f"{k}={v}" for k, v in {"mem_mb": 4000, "runtime": 60, "threads": 8, **train_resources(runtime)}.items()
    )
    rows = _table(preset_plan)
    for stage in ("train_initial", "train_posterior", "train_final (vr-gml)", "baselines (rft)"):
        assert rows[stage][8] == train, stage
    assert (
        rows["evaluate_benchmark math500 (5 models)"][8] == "mem_mb=8000, runtime=240, threads=8, gpu=1, cpus_per_gpu=8"
    )
    assert rows["weights (gml, acc)"][8] == "local (submitting host)"
    # two nodes: the training jobs ask for them (launch.train_resources) and hold 16 GPUs; sampling stays on one
    two = load_params(REPO / PRESET, ["runtime.nodes=2"])
    plan = {r["stage"]: r for r in CP.cost_plan(two, "h100-80gb")}
    assert plan["train_initial"]["slurm"] == {
        "mem_mb": 4000,
        "runtime": 60,
        "threads": 8,
        **train_resources(two["runtime"]),
    }
    assert plan["train_initial"]["slurm"]["gres"] == "gpu:8" and plan["train_initial"]["slurm"]["nodes"] == 2
    assert (plan["train_initial"]["gpus_held"], plan["sample_posterior"]["gpus_held"]) == (16, 1)
    one = {r["stage"]: r for r in CP.cost_plan(params, "h100-80gb")}
    assert plan["train_initial"]["hours_per_job"] == pytest.approx(one["train_initial"]["hours_per_job"] / 2)


def test_the_rule_resources_are_those_of_the_rules_and_the_profile():
    rules = "\n".join(p.read_text() for p in sorted((REPO / "workflow" / "rules").glob("*.smk")))
    declared = {}
    for block in re.split(r"\n(?=\s*rule )", rules):
        m = re.match(r"\s*rule (\w+):", block)
        call = re.search(r"\*\*(heavy|heavy_train)\((\d+), (\d+)\)", block)
        if m and call and not m[1].startswith("claims"):
            declared[m[1]] = (call[1], int(call[2]), int(call[3]))
    assert declared == {
        rule: ("heavy_train" if rule in CP.TRAIN_RULES else "heavy", *res) for rule, res in CP.RULE_RESOURCES.items()
    }
    profile = yaml.safe_load((REPO / "workflow" / "profiles" / "slurm" / "config.yaml").read_text())
    assert profile["retries"] == CP.PROFILE_RETRIES
    assert f"--signal=TERM@{CP.SIGNAL_LEAD_MIN * 60}" in profile["default-resources"]["slurm_extra"]


def test_an_engine_over_every_gpu_bills_the_same_work_once():
    params = load_params(REPO / PRESET)
    base = {r["stage"]: r for r in CP.cost_plan(params, "h100-80gb")}
    wide = {r["stage"]: r for r in CP.cost_plan({**params, "vllm": {"tensor_parallel_size": 8}}, "h100-80gb")}
    for stage in ("sample_posterior", "score", "rollout", "evaluate (5 models)"):
        # a job holds the GPUs its engine uses, one or eight: the same GPU-hours, an eighth of the hours
        assert (base[stage]["gpus_held"], wide[stage]["gpus_held"], wide[stage]["gpus_used"]) == (1, 8, 8)
        assert "computes on" not in base[stage]["note"] + wide[stage]["note"]
        assert wide[stage]["gpu_hours"] == pytest.approx(base[stage]["gpu_hours"])
        assert wide[stage]["hours_per_job"] == pytest.approx(base[stage]["hours_per_job"] / 8)
    assert wide["train_initial"]["gpu_hours"] == base["train_initial"]["gpu_hours"]


def test_an_unknown_gpu_is_an_error_naming_the_known_ones(capsys):
    assert main(["--params", PRESET, "plan", "--gpu", "a100"]) == 2
    err = capsys.readouterr().err
    assert "unknown GPU 'a100'" in err and "h100-80gb, h200" in err
    assert main(["--params", PRESET, "plan", "--model-class", "qwen3-99b"]) == 2
    assert "unknown model class 'qwen3-99b'" in capsys.readouterr().err


def test_the_embedded_default_prints_a_table_too(monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    assert main(["plan", "--gpu", "h200"]) == 0
    out = capsys.readouterr().out
    params = load_params(REPO / "params.yaml")
    rows = _table(out)
    assert list(rows) == [*MAIN_STAGES, "**total**"]  # no benchmarks in the embedded default
    assert "(qwen3-0.6b rates)" in out and "sampling.backend is hf" in out
    prompt, answer = CP.SYNTHETIC_ASSUMPTIONS["prompt_tokens"][0], CP.SYNTHETIC_ASSUMPTIONS["answer_tokens"][0]
    s = params["sampling"]
    assert (
        rows["sample_posterior"][1]
        == f"{round(params['task']['n_train'] * s['k'] * (prompt + answer + s['max_trace_tokens'])):,}"
    )
    assert rows["train_initial"][7:9] == ["1", "mem_mb=4000, runtime=60, threads=1"]  # runtime.gpus 0: no GPU asked for
    assert "- prompt_tokens = 10: the embedded task" in out


@pytest.mark.parametrize(
    ("pretrained", "expected"),
    [
        ("Qwen/Qwen3-4B-Base", "qwen3-4b"),
        ("external/SmolLM2-135M-Instruct.Q4_1.gguf", "qwen3-0.6b"),
        (None, "qwen3-0.6b"),
    ],
)
def test_the_size_class_is_the_smallest_at_least_the_models_size(pretrained, expected):
    assert CP.size_class({"model": {"pretrained": pretrained}}, ["qwen3-4b", "qwen3-0.6b"]) == expected


def test_a_model_of_no_known_size_is_an_error():
    with pytest.raises(CP.InputError, match="larger than every class"):
        CP.size_class({"model": {"pretrained": "Qwen/Qwen3-8B"}}, ["qwen3-0.6b", "qwen3-4b"])
    with pytest.raises(CP.InputError, match="--model-class"):
        CP.size_class({"model": {"pretrained": "/models/mine"}}, ["qwen3-0.6b", "qwen3-4b"])


def test_the_throughput_table_says_where_each_rate_comes_from():
    performance = (REPO / "docs" / "performance.md").read_text()
    for gpu, classes in RATES.items():
        assert set(classes) == {"qwen3-0.6b", "qwen3-4b"}, gpu
        for entries in classes.values():
            assert set(entries) == {"train", "generate", "score"}
            for e in entries.values():
                assert e["tokens_per_s"] > 0 and e["source"].startswith(("measured: ", "estimate: "))
    measured = [
        (g, c, k)
        for g, cs in RATES.items()
        for c, es in cs.items()
        for k, e in es.items()
        if e["source"].startswith("measured")
    ]
    assert measured == [("h100-80gb", "qwen3-0.6b", "score")]
    # the measured rate is the slowest 8192-token run of bench/gpu_score.py in docs/performance.md
    assert f"| 8192 | {RATES['h100-80gb']['qwen3-0.6b']['score']['tokens_per_s']}-" in performance


def test_plan_imports_no_torch():
    code = (
        "import sys\nfrom varreason.cli import main\n"
        f"main(['--params', {PRESET!r}, 'plan'])\n"
        "print(sorted(m for m in ('torch', 'transformers', 'vllm') if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"

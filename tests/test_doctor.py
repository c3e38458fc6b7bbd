"""``varreason doctor``: a healthy tiny run folder passes; a damaged one gets each problem named, with a fix."""

from __future__ import annotations

import base64
import copy
import importlib.metadata
import importlib.util
import json
import shutil

import pandas as pd
import pytest
import yaml

from conftest import REPO, TINY
from varreason import doctor as D
from varreason import doctor_env
from varreason.cli import main
from varreason.columns import POSTERIOR_TRACES as TRACE_COLUMNS
from varreason.modeling import build_char_tokenizer, build_tiny_qwen3, save_model_atomic
from varreason.stages.prepare import prepare

PARAMS = yaml.safe_load((REPO / "workflow" / "presets" / "smoke.yaml").read_text())


def _cmd(stage: str, rest: str) -> str:
    return f"varreason --params params.yaml --threads 1 --log logs/{stage}.log {rest}"


# a slice of the DAG, as `varreason dvc-yaml` writes it
DVC = {
    "stages": {
        "prepare": {
            "cmd": _cmd(
                "prepare", "prepare --train-out data/prepared/train.parquet --test-out data/prepared/test.parquet"
            ),
            "deps": ["src/varreason/stages/prepare.py"],
            "outs": ["data/prepared/train.parquet", "data/prepared/test.parquet"],
        },
        "train_initial": {
            "cmd": _cmd("train_initial", "train-initial --train data/prepared/train.parquet --out data/models/initial"),
            "deps": ["data/prepared/train.parquet"],
            "outs": ["data/models/initial"],
        },
        "sample_posterior-0": {
            "cmd": _cmd("sample_posterior-0", "sample-posterior --shard 0"),
            "deps": ["data/prepared/train.parquet", "data/models/initial"],
            "outs": [{"data/traces/posterior/shard-0.parquet": {"persist": True}}],
        },
        "evaluate-initial": {
            "cmd": _cmd("evaluate-initial", "evaluate --name initial"),
            "deps": ["data/models/initial", "data/prepared/test.parquet"],
            "outs": ["data/eval/initial.parquet"],
            "metrics": [{"metrics/eval/initial.json": {"cache": False}}],
        },
    }
}


@pytest.fixture(scope="module")
def healthy(tmp_path_factory):
    """prepare, train_initial and sample_posterior-0 done (tiny real outputs); evaluate-initial not run."""
    run = tmp_path_factory.mktemp("run")
    params = copy.deepcopy(PARAMS)
    params["task"]["n_train"], params["task"]["n_test"] = 12, 4
    (run / "params.yaml").write_text(yaml.safe_dump(params))
    (run / "dvc.yaml").write_text(yaml.safe_dump(DVC))
    prepare(params, run / "data/prepared/train.parquet", run / "data/prepared/test.parquet")
    tok = build_char_tokenizer()
    save_model_atomic(build_tiny_qwen3(TINY, tok, seed=0), tok, run / "data/models/initial")
    row = dict(question_id="q0", sample_index=0, question="1+1", answer="2", gold="2", prompt="Q1+1H2T")
    row |= dict(trace_token_ids=[3, 4], finish_reason="stop", sample_logps=[-1.0, -1.0])
    (run / "data/traces/posterior").mkdir(parents=True)
    pd.DataFrame([row], columns=TRACE_COLUMNS).to_parquet(run / "data/traces/posterior/shard-0.parquet")
    return run


def _run_doctor(run, capsys, *flags) -> tuple[int, str]:
    code = main(["doctor", "--run-dir", str(run), "--only", "run", *flags])
    return code, capsys.readouterr().out


def test_healthy_run_folder(healthy, capsys):
    code, out = _run_doctor(healthy, capsys, "--json")
    doc = json.loads(out)
    assert code == 0 and doc["ok"] and doc["problems"] == 0, out
    by_name = {c["name"]: c for c in doc["checks"]}
    assert by_name["params.yaml"]["status"] == "ok"
    assert by_name["stages done"]["detail"].startswith("3 of 4 stage(s) done")
    assert (
        by_name["stages not run"]["status"] == "warning" and "evaluate-initial" in by_name["stages not run"]["detail"]
    )
    assert "snakemake --cores 2" in by_name["stages not run"]["fix"]
    code, text = _run_doctor(healthy, capsys)
    assert code == 0 and f"Run folder {healthy}" in text and "No problems; 1 warning(s)." in text


def test_damaged_run_folder(healthy, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(healthy, run)
    shutil.rmtree(run / "data/models/initial")  # a missing model dir that a later stage read
    shard = run / "data/traces/posterior/shard-0.parquet"
    shard.write_bytes(shard.read_bytes()[:100])  # a truncated Parquet shard
    (run / "data/prepared/.test.parquet.tmp-999999999").write_bytes(b"PAR1")  # a killed writer's temp file
    (run / "data/models/posterior.tmp").mkdir()  # a killed save_model_atomic
    (run / "logs").mkdir()
    (run / "logs/evaluate-initial.log").write_text(
        "eval[initial] greedy: 0%\nvarreason evaluate: error: data/models/initial: model directory not found\n"
    )
    marker = run / ".snakemake/incomplete" / base64.urlsafe_b64encode(b"data/prepared/train.parquet").decode()
    marker.parent.mkdir(parents=True)
    marker.write_text("{}")
    params = yaml.safe_load((run / "params.yaml").read_text())
    params["sampling"]["temprature"] = 0.7
    (run / "params.yaml").write_text(yaml.safe_dump(params))

    code, out = _run_doctor(run, capsys, "--json")
    doc = json.loads(out)
    assert code == 1 and not doc["ok"]
    problems = {c["name"]: c for c in doc["checks"] if c["status"] == "problem"}
    warnings = {c["name"]: c for c in doc["checks"] if c["status"] == "warning"}
    assert set(problems) == {
        "params.yaml",
        "data/models/initial",
        "data/traces/posterior/shard-0.parquet",
        "evaluate-initial",
        "data/prepared/train.parquet",
    }, out
    assert "sampling: unknown key(s)" in problems["params.yaml"]["detail"]
    m = problems["data/models/initial"]
    assert "missing, but stage(s) sample_posterior-0 that read it have run" in m["detail"]
    assert "written by stage train_initial" in m["detail"] and "snakemake --cores 2 data/models/initial" in m["fix"]
    p = problems["data/traces/posterior/shard-0.parquet"]
    assert "not a readable Parquet file, truncated or corrupt" in p["detail"] and "sample_posterior-0" in p["detail"]
    assert p["fix"].startswith("delete it and rerun its stage: `rm -r data/traces/posterior/shard-0.parquet")
    e = problems["evaluate-initial"]
    assert "stage evaluate-initial failed: varreason evaluate: error: data/models/initial" in e["detail"]
    assert "logs/evaluate-initial.log" in e["detail"]
    assert "Snakemake marked it incomplete" in problems["data/prepared/train.parquet"]["detail"]
    assert "--rerun-incomplete" in problems["data/prepared/train.parquet"]["fix"]
    assert set(warnings) == {"data/prepared/.test.parquet.tmp-999999999", "data/models/posterior.tmp"}
    assert all(w["fix"].startswith("delete it: `rm -r ") for w in warnings.values())
    code, text = _run_doctor(run, capsys)
    assert code == 1 and "5 problem(s), 2 warning(s): see the fixes above." in text
    assert "  problem  data/traces/posterior/shard-0.parquet: not a readable Parquet file" in text
    assert "fix: delete it and rerun its stage" in text


def test_model_dir_without_weights_and_bad_columns(healthy, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(healthy, run)
    (run / "data/models/initial/model.safetensors").unlink()
    pd.DataFrame({"question": ["1+1"]}).to_parquet(run / "data/prepared/test.parquet")
    code, out = _run_doctor(run, capsys, "--json")
    problems = {c["name"]: c["detail"] for c in json.loads(out)["checks"] if c["status"] == "problem"}
    assert code == 1
    assert "data/models/initial: no weights" in problems["data/models/initial"]
    assert "missing column(s) ['question_id'" in problems["data/prepared/test.parquet"]


def test_environment_checks(monkeypatch, tmp_path):
    checks = {c.name: c for c in doctor_env.check_environment(tmp_path, PARAMS)}
    for name in ("python", *doctor_env.KEY_PACKAGES, "threads", "gpu", "vllm", "math-verify", "slurm", "disk"):
        assert name in checks, name
        assert checks[name].status in ("ok", "warning", "problem")
    assert checks["python"].status == "ok"
    # a package off its pin, vLLM asked for but absent, more threads than cores
    real_version, real_find = importlib.metadata.version, importlib.util.find_spec
    monkeypatch.setattr(importlib.metadata, "version", lambda n: "0.0.1" if n == "dvc" else real_version(n))
    monkeypatch.setattr(importlib.util, "find_spec", lambda n: None if n == "vllm" else real_find(n))
    params = copy.deepcopy(PARAMS)
    params["sampling"]["backend"] = "vllm"
    params["runtime"]["threads"] = 4096
    checks = {c.name: c for c in doctor_env.check_environment(tmp_path, params)}
    assert checks["dvc"].status == "warning" and "dvc 0.0.1 installed; pyproject pins ==3.67.1" in checks["dvc"].detail
    assert checks["vllm"].status == "problem" and "sampling.backend is vllm" in checks["vllm"].detail
    assert checks["threads"].status == "warning" and "runtime.threads is 4096" in checks["threads"].detail
    text = D.render(list(checks.values()), None)
    assert "Environment" in text and "fix: " in text


def test_an_unfinished_stage_says_what_it_resumes_from(healthy, tmp_path, capsys):
    """A killed evaluation with completed parts, and a training checkpoint: doctor names both."""
    run = tmp_path / "run"
    shutil.copytree(healthy, run)
    parts = run / "data/eval/initial.parquet.ckpt"
    parts.mkdir(parents=True)
    for name in ("greedy-00000", "greedy-00001", "sampled-00000"):
        pd.DataFrame({"row": [0]}).to_parquet(parts / f"{name}.parquet")
    (run / "logs").mkdir()
    (run / "logs/evaluate-initial.log").write_text("eval[initial] sampled part 2/5:  10%\n")
    code, out = _run_doctor(run, capsys, "--json")
    warnings = {c["name"]: c for c in json.loads(out)["checks"] if c["status"] == "warning"}
    w = warnings["evaluate-initial"]
    assert code == 0 and "stage evaluate-initial is unfinished" in w["detail"]
    assert f"its completed parts (2 greedy, 1 sampled) in {parts}" in w["detail"]
    assert "only the work after that is redone" in w["fix"]

    from varreason.resume import describe

    model = tmp_path / "models" / "final-gml"
    for step, whole in ((20, True), (30, True), (40, False)):  # step 40's save was cut short
        d = model.with_name("final-gml.ckpt") / f"step-{step:08d}"
        d.mkdir(parents=True)
        if whole:
            (d / "trainer_state.json").write_text(json.dumps({"step": step, "steps": 60}))
    assert describe(model) == f"the training checkpoint at step 30 of 60 ({model.with_name('final-gml.ckpt')})"
    assert describe(tmp_path / "models" / "initial") is None

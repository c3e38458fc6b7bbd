import copy
import re
import subprocess
import sys

import pytest
import yaml

from conftest import REPO
from varreason.params import ParamsError, load_params, validate_params

DEFAULT = yaml.safe_load((REPO / "params.yaml").read_text())


def _write(tmp_path, params):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_default_and_smoke_params_are_valid():
    load_params(REPO / "params.yaml")
    smoke = load_params(REPO / "workflow" / "presets" / "smoke.yaml")
    assert set(smoke) == set(DEFAULT)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda p: p["sampling"].update(temprature=0.7), "sampling: unknown key(s)"),
        (lambda p: p.update(sede=1), "'sede' was unexpected"),
        (lambda p: p["train_final"].update(stepz=3), "'stepz' was unexpected"),
        (lambda p: p["sampling"].update(k="eight"), "sampling.k: 'eight' is not of type 'integer'"),
        (lambda p: p["select"].update(mode="best"), "select.mode"),
        (lambda p: p["task"]["templates"].update(prompt="Q{question}H{answer}T"), "task.templates.prompt"),
        (lambda p: p["evaluate"].update(pass_k=[16]), "evaluate.pass_k"),
        (lambda p: p["sampling"].update(backend="sglang"), "sampling.backend"),
        (lambda p: p["task"]["templates"].update(posterior_prompt="Q{question}T"), "{answer} (the hint)"),
    ],
)
def test_bad_params_name_the_key(tmp_path, edit, expected):
    params = copy.deepcopy(DEFAULT)
    edit(params)
    with pytest.raises(ParamsError) as e:
        validate_params(params, "params.yaml")
    assert expected in str(e.value)


def test_cli_rejects_bad_params_before_any_work(tmp_path):
    params = copy.deepcopy(DEFAULT)
    params["sampling"]["temprature"] = 0.7
    path = _write(tmp_path, params)
    out = tmp_path / "train.parquet"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "varreason.cli",
            "--params",
            str(path),
            "prepare",
            "--train-out",
            str(out),
            "--test-out",
            str(tmp_path / "test.parquet"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert r.returncode == 2
    assert "temprature" in r.stderr and "sampling" in r.stderr
    assert not out.exists()


def test_snakemake_rejects_bad_params_before_any_job(tmp_path):
    params = copy.deepcopy(DEFAULT)
    params["train_initial"]["learning_rate"] = 0.1
    _write(tmp_path, params)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(REPO / "Snakefile"),
            "--directory",
            str(tmp_path),
            "--cores",
            "1",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode != 0
    assert "learning_rate" in r.stdout + r.stderr
    assert not (tmp_path / "data").exists()


def test_set_overrides_change_one_key_and_name_bad_ones():
    from varreason.params import ParamsError, apply_overrides, load_params, overrides_between

    base = load_params(REPO / "params.yaml")
    p = load_params(REPO / "params.yaml", ["seed=3", "select.mode=argmax", "evaluate.pass_k=[1, 2]"])
    assert p["seed"] == 3 and p["select"]["mode"] == "argmax" and p["evaluate"]["pass_k"] == [1, 2]
    assert base["seed"] == 0  # the file's params are not touched
    assert sorted(overrides_between(base, p)) == ["evaluate.pass_k=[1, 2]", "seed=3", 'select.mode="argmax"']
    assert apply_overrides(base, overrides_between(base, p)) == p
    for bad, says in [
        ("sed=1", "unknown key 'sed'"),
        ("select.mod=argmax", "unknown key 'select.mod'"),
        ("seed.x=1", "seed is not a section"),
        ("seed", "expected KEY=VALUE"),
    ]:
        with pytest.raises(ParamsError, match=re.escape(says)):
            apply_overrides(base, [bad])
    with pytest.raises(ParamsError, match="select.mode"):
        load_params(REPO / "params.yaml", ["select.mode=best"])

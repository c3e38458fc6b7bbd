"""Stage functions on small hand-made inputs: weights, selection, bad inputs, external sources."""

import copy
import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, TINY
from varreason.corpus import select_traces
from varreason.io import InputError, read_parquet
from varreason.modeling import initial_model, save_model_atomic
from varreason.stages.prepare import prepare
from varreason.stages.weights import weights

PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())


def _scored(tmp_path):
    rows = [
        # question a: three traces, one malformed (never reached the delimiter)
        dict(
            question_id="a",
            sample_index=0,
            prior_logps=[-1.0, -1.0],
            posterior_logps=[-0.5, -0.5],
            answer_logps=[-0.2, -0.4],
            finish_reason="stop",
        ),
        dict(
            question_id="a",
            sample_index=1,
            prior_logps=[-0.1, -0.3, -0.2],
            posterior_logps=[-0.2, -0.2, -0.2],
            answer_logps=[-2.0, -1.0],
            finish_reason="stop",
        ),
        dict(
            question_id="a",
            sample_index=2,
            prior_logps=[-0.1],
            posterior_logps=[-0.1],
            answer_logps=[],
            finish_reason="length",
        ),
        dict(
            question_id="b",
            sample_index=0,
            prior_logps=[-0.7],
            posterior_logps=[-0.7],
            answer_logps=[-0.1],
            finish_reason="stop",
        ),
    ]
    path = tmp_path / "scored.parquet"
    pd.DataFrame(rows).to_parquet(path)
    rollouts = pd.DataFrame(
        dict(
            question_id=["a", "a", "a", "b"],
            sample_index=[0, 1, 2, 0],
            rollout_verdicts=[[True, False], [False, False], [], [True, True]],
            acc=[0.5, 0.0, 0.0, 1.0],
        )
    )
    rollouts.to_parquet(tmp_path / "rollouts.parquet")
    return path, rows


def test_gml_weights_equal_brute_force(tmp_path):
    path, rows = _scored(tmp_path)
    df = weights(PARAMS, "gml", [path], tmp_path / "w.parquet", tmp_path / "m.json")
    rho = []
    for r in rows[:3]:
        if r["finish_reason"] != "stop":
            rho.append(0.0)
            continue
        ratio = math.exp(np.mean(np.subtract(r["prior_logps"], r["posterior_logps"])))
        rho.append(ratio * math.exp(np.mean(r["answer_logps"])))
    a = df[df["question_id"] == "a"].sort_values("sample_index")
    assert np.allclose(np.exp(a["log_weight"]), rho)
    assert np.allclose(a["weight"], np.array(rho) / sum(rho))
    w = np.array(rho) / sum(rho)
    assert np.allclose(a["ess"], 1 / (w**2).sum())
    assert np.allclose(a["iwae_bound"], math.log(sum(rho) / 3))
    assert df.loc[df["question_id"] == "b", "weight"].tolist() == [1.0]


def test_acc_weights_and_sum_ratio(tmp_path):
    path, rows = _scored(tmp_path)
    params = copy.deepcopy(PARAMS)
    params["scoring"]["ratio"] = "sum"
    df = weights(params, "acc", [path], tmp_path / "w.parquet", tmp_path / "m.json", [tmp_path / "rollouts.parquet"])
    a = df[df["question_id"] == "a"].sort_values("sample_index")
    assert a["log_weight"].iloc[0] == pytest.approx(-1.0 + math.log(0.5))  # sum of log-ratio -1.0, acc 0.5
    assert a["weight"].tolist() == [1.0, 0.0, 0.0]  # acc 0 and malformed traces get no weight
    with pytest.raises(InputError, match="rollout"):
        weights(params, "acc", [path], tmp_path / "w2.parquet", tmp_path / "m2.json")


def test_selection_modes(tmp_path):
    df = pd.DataFrame(
        dict(
            question_id=["a", "a", "b", "b", "c"],
            log_weight=[math.log(0.9), math.log(0.1), math.log(0.3), math.log(0.2), -math.inf],
            weight=[0.9, 0.1, 0.6, 0.4, 0.0],
        )
    )
    argmax = select_traces(df, "argmax", 0.5)
    assert argmax.index.tolist() == [0, 2] and argmax["train_weight"].tolist() == [1.0, 1.0]
    assert select_traces(df, "threshold", 0.5).index.tolist() == [0]
    soft = select_traces(df, "soft", 0.5)
    assert soft.index.tolist() == [0, 1, 2, 3] and soft["train_weight"].tolist() == [0.9, 0.1, 0.6, 0.4]
    with pytest.raises(ValueError):
        select_traces(df, "best", 0.5)


def test_bad_input_names_the_file_and_field(tmp_path):
    path = tmp_path / "traces.parquet"
    pd.DataFrame({"question_id": ["a"], "sample_index": [0]}).to_parquet(path)
    with pytest.raises(InputError, match=r"traces\.parquet: missing column\(s\) \['question'"):
        read_parquet(path, ["question_id", "question"])
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputError, match="broken.parquet: not a readable Parquet file"):
        read_parquet(tmp_path / "broken.parquet")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "varreason.cli",
            "--params",
            str(REPO / "params.yaml"),
            "score",
            "--traces",
            str(path),
            "--out",
            str(tmp_path / "scored.parquet"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert r.returncode == 2 and "traces.parquet: missing column" in r.stderr
    assert not (tmp_path / "scored.parquet").exists()


def test_prepare_from_a_local_jsonl_file(tmp_path):
    src = tmp_path / "data.jsonl"
    rows = [{"question": f"{i}+1", "trace": f"+1={(i + 1) % 10}", "answer": f"{(i + 1) % 10}"} for i in range(10)]
    rows[3]["split"] = "test"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    params = copy.deepcopy(PARAMS)
    params["task"]["source"] = str(src)
    n_train, n_test = prepare(params, tmp_path / "train.parquet", tmp_path / "test.parquet")
    train = pd.read_parquet(tmp_path / "train.parquet")
    assert {"question_id", "question", "trace", "answer"} <= set(train.columns)
    assert n_train + n_test == 10 and n_test >= 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "1+1", "answer": "2"}\n')
    params["task"]["source"], params["task"]["layout"] = str(bad), "native"
    with pytest.raises(InputError, match=r"bad.jsonl: missing column\(s\) \['trace'\]"):
        prepare(params, tmp_path / "t.parquet", tmp_path / "u.parquet")


def test_pretrained_model_path_loads_a_local_checkpoint(tmp_path):
    model, tok = initial_model(TINY, seed=0)
    save_model_atomic(model, tok, tmp_path / "ckpt")
    loaded, tok2 = initial_model({**TINY, "pretrained": str(tmp_path / "ckpt")}, seed=1)
    assert tok2("Q1+2T").input_ids == tok("Q1+2T").input_ids
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert (a == b).all()
    assert not (tmp_path / "ckpt.tmp").exists()

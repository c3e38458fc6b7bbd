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
    soft = select_traces(df, "soft", 0.5)  # one trace per question with a live weight, drawn by rho~
    assert soft["question_id"].tolist() == ["a", "b"] and soft["train_weight"].tolist() == [1.0, 1.0]
    # filter: uniformly among the traces above the threshold (a: only trace 0; b: none)
    assert select_traces(df, "filter", 0.5).index.tolist() == [0]
    picked = select_traces(df, "filter", 0.15).index.tolist()
    assert picked[0] == 0 and picked[1] in (2, 3) and len(picked) == 2
    with pytest.raises(ValueError):
        select_traces(df, "best", 0.5)


def _params(**select):
    params = copy.deepcopy(PARAMS)
    params["select"].update(select)
    return params


def test_a_trace_over_max_thinking_tokens_gets_no_weight(tmp_path):
    path, rows = _scored(tmp_path)
    m = tmp_path / "m.json"
    # a's trace 1 has 3 thinking tokens (the scored trace tokens): at the limit, so weight zero
    df = weights(_params(max_thinking_tokens=3), "gml", [path], tmp_path / "w.parquet", m)
    a = df[df["question_id"] == "a"].sort_values("sample_index")
    assert a["log_weight"].iloc[1] == -math.inf and np.isfinite(a["log_ratio"].iloc[1])  # raw terms kept
    assert a["weight"].tolist() == [1.0, 0.0, 0.0] and a["ess"].iloc[0] == 1.0
    assert select_traces(df, "argmax", 0.5)["sample_index"].tolist() == [0, 0]
    assert 1 not in select_traces(df, "soft", 0.5).loc[lambda d: d["question_id"] == "a", "sample_index"].tolist()
    assert json.loads(m.read_text())["traces_too_long"] == 1
    # limit 2: every trace of a that reached the delimiter is too long; a is dropped with that reason
    df = weights(
        _params(max_thinking_tokens=2), "acc", [path], tmp_path / "w.parquet", m, [tmp_path / "rollouts.parquet"]
    )
    assert df.loc[df["question_id"] == "a", "weight"].tolist() == [0.0, 0.0, 0.0]
    stats = json.loads(m.read_text())
    assert stats["questions_dropped_reasons"] == {
        "every trace that reached the answer delimiter has 2 or more thinking tokens": 1
    }
    assert stats["traces_too_long"] == 2 and select_traces(df, "argmax", 0.5)["question_id"].tolist() == ["b"]


def test_without_the_long_trace_rule_nothing_changes(tmp_path):
    """Off (null) or far above every trace (the embedded default 28000 on 40-token traces): the same
    table and metrics, byte for byte (test_gml_weights_equal_brute_force checks the values)."""
    path, _ = _scored(tmp_path)
    out = {}
    for name, limit in {"default": 28000, "off": None, "huge": 10**9}.items():
        params = _params(max_thinking_tokens=limit)
        df = weights(params, "gml", [path], tmp_path / f"{name}.parquet", tmp_path / f"{name}.json")
        out[name] = (df, (tmp_path / f"{name}.json").read_text())
    assert (tmp_path / "off.parquet").read_bytes() == (tmp_path / "default.parquet").read_bytes()
    for name in ("off", "huge"):
        pd.testing.assert_frame_equal(out[name][0], out["default"][0])
        assert out[name][1] == out["default"][1]
    assert "traces_too_long" not in json.loads(out["default"][1])  # the traces are far below 28000


def _final_set_inputs(tmp_path):
    """A tokenizer checkpoint, a prepared train split (a, b, c) and scored traces of a and b: per
    question a short trace (6 tokens) and a long one (8 tokens) of larger weight; c has none."""
    from varreason.modeling import build_char_tokenizer

    tok = build_char_tokenizer()
    model, _ = initial_model(TINY, seed=0)
    save_model_atomic(model, tok, tmp_path / "initial")
    train = pd.DataFrame(
        dict(question_id=["a", "b", "c"], question=["1+2", "3+4", "5+6"], trace=["1+2=3", "3+4=7", "5+6=1"])
    ).assign(answer=["3", "7", "1"], gold=["3", "7", "1"])
    train.to_parquet(tmp_path / "train.parquet")
    by_id = train.set_index("question_id")
    rows = []
    for q, k, trace, prior in [("a", 0, "1+2=3", -0.5), ("a", 1, "1+2=3=3", -0.2), ("b", 0, "3+4=7", -0.5)] + [
        ("b", 1, "3+4=7=7", -0.2)
    ]:
        ids = tok(trace + "A", add_special_tokens=False).input_ids
        rows.append(
            dict(
                question_id=q,
                sample_index=k,
                question=by_id.loc[q, "question"],
                answer=by_id.loc[q, "answer"],
                trace=trace,
                trace_token_ids=ids,
                answer_token_ids=tok(by_id.loc[q, "answer"], add_special_tokens=False).input_ids,
                prior_logps=[prior] * len(ids),
                posterior_logps=[-0.4] * len(ids),
                answer_logps=[-0.1],
                finish_reason="stop",
            )
        )
    pd.DataFrame(rows).to_parquet(tmp_path / "scored.parquet")


def _final(tmp_path, params):
    """weights (GML) then build-final with ``params``: the final set and its metrics."""
    from varreason.stages.build import build_final

    params = copy.deepcopy(params)
    params["select"]["mode"] = "argmax"
    params["task"]["source"] = "x.jsonl"  # no synthetic trace checks on these hand-made traces
    weights(params, "gml", [tmp_path / "scored.parquet"], tmp_path / "w.parquet", tmp_path / "wm.json")
    final = build_final(
        params, tmp_path / "w.parquet", tmp_path / "train.parquet", tmp_path / "initial", tmp_path / "f.parquet",
        tmp_path / "fm.json",
    )  # fmt: skip
    return final, json.loads((tmp_path / "fm.json").read_text())


def test_a_question_whose_traces_are_all_too_long_falls_back_to_its_original_trace(tmp_path):
    _final_set_inputs(tmp_path)
    # limit 6: every trace of a and b is too long; both fall back, c (no traces at all) does not
    final, m = _final(tmp_path, _params(max_thinking_tokens=6, fallback_original=True, mix_original=True))
    assert final["source"].tolist() == ["original"] * 3 + ["fallback"] * 2
    originals = final[final["source"] == "original"].set_index("question_id")
    fb = final[final["source"] == "fallback"].set_index("question_id")
    assert fb.index.tolist() == ["a", "b"] and (fb["weight"] == 1.0).all()
    for q in fb.index:  # the very rows of the original data: the reference trace twice in the mix
        assert list(fb.loc[q, "completion_token_ids"]) == list(originals.loc[q, "completion_token_ids"])
        assert fb.loc[q, "trace"] == originals.loc[q, "trace"] and fb.loc[q, "prompt"] == originals.loc[q, "prompt"]
        assert fb.loc[q, "question"] in ("1+2", "3+4")
    assert m["questions_fallback"] == 2 and m["n_selected"] == 0 and m["n_examples"] == 5
    # without the mix the fallback rows are the set (the reference's "-posterior" set)
    final, m = _final(tmp_path, _params(max_thinking_tokens=6, fallback_original=True, mix_original=False))
    assert final[["question_id", "source"]].values.tolist() == [["a", "fallback"], ["b", "fallback"]]
    # limit 7: the long traces (8 tokens) get no weight, so the short ones are selected; none falls back
    final, m = _final(tmp_path, _params(max_thinking_tokens=7, fallback_original=True, mix_original=False))
    assert final["source"].tolist() == ["selected"] * 2 and final["trace"].tolist() == ["1+2=3", "3+4=7"]
    assert m["questions_fallback"] == 0


def test_without_fallback_or_the_rule_selection_is_unchanged(tmp_path):
    _final_set_inputs(tmp_path)
    final, m = _final(tmp_path, _params(max_thinking_tokens=6, fallback_original=False, mix_original=False))
    assert final.empty and "questions_fallback" not in m  # no weight, no fallback: the questions are left out
    # rule off: the long traces (larger weight) are selected
    final, m = _final(tmp_path, _params(max_thinking_tokens=None, fallback_original=True, mix_original=False))
    assert final["trace"].tolist() == ["1+2=3=3", "3+4=7=7"] and m["questions_fallback"] == 0
    # the embedded defaults (28000, no fallback) and both off: the same set and metrics
    assert PARAMS["select"]["max_thinking_tokens"] == 28000 and PARAMS["select"]["fallback_original"] is False
    sets = [_final(tmp_path, p) for p in (PARAMS, _params(max_thinking_tokens=None, fallback_original=False))]
    for other, other_m in sets[1:]:
        pd.testing.assert_frame_equal(other, sets[0][0])
        assert other_m == sets[0][1]
    assert sets[0][0]["source"].tolist() == ["original"] * 3 + ["selected"] * 2


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

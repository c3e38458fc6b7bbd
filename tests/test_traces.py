"""`varreason traces` on a small corpus made here; every number checked against a direct computation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO
from varreason.cli import main
from varreason.estimators import ess, normalised_weights

QUESTIONS = {"q0": ("3+4-9", "88", "+4-9=8"), "q1": ("1+1+1", "33", "+1+1=3"), "q2": ("5-5", "05", "-5=0")}


@pytest.fixture
def corpus(tmp_path):
    """Three questions x 3 traces; q1's best weight is under the threshold, q2 has no well-formed trace."""
    log_w = {
        "q0": [np.log(0.9), np.log(0.1), -np.inf],
        "q1": [np.log(0.3), np.log(0.2), np.log(0.4)],
        "q2": [-np.inf, -np.inf, -np.inf],
    }
    traces = {
        "q0": ["+4=7-9=8", "+4-9=9", "+4"],
        "q1": ["+1+1=3", "+1=2+1=4", "+1=2+1=3"],
        "q2": ["-5", "-5=1", "-"],
    }
    rows = []
    for qid, (q, a, _) in QUESTIONS.items():
        lw = np.array(log_w[qid])
        w = normalised_weights(lw)
        for k in range(3):
            rows.append(
                {
                    "question_id": qid,
                    "sample_index": k,
                    "question": q,
                    "answer": a,
                    "trace": traces[qid][k],
                    "finish_reason": "length" if qid == "q2" else ("stop" if np.isfinite(lw[k]) else "eos"),
                    "prior_logps": [-0.5, -0.25],
                    "posterior_logps": [-0.25, -0.25],
                    "log_ratio": -0.125,
                    "log_likelihood": lw[k] + 0.125,
                    "log_weight": lw[k],
                    "weight": w[k],
                    "ess": ess(lw),
                }
            )
    path = tmp_path / "weighted.parquet"
    pd.DataFrame(rows).to_parquet(path)
    own = pd.DataFrame(
        {"question_id": ["q0"] * 4 + ["q1"] * 4 + ["q2"] * 4, "correct": [1, 1, 1, 0] + [0, 0, 0, 1] + [0, 1, 0, 1]}
    ).assign(correct=lambda d: d["correct"].astype(bool))
    own.to_parquet(tmp_path / "initial.parquet")
    pd.DataFrame(
        {
            "question_id": list(QUESTIONS),
            "trace": [v[2] for v in QUESTIONS.values()],
            "answer": [v[1] for v in QUESTIONS.values()],
        }
    ).to_parquet(tmp_path / "train.parquet")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["sampling"]["k"] = 3
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


def _run(capsys, tmp, *args):
    argv = ["--params", str(tmp / "params.yaml"), "traces", *args[:1], "--corpus", str(tmp / "weighted.parquet")]
    argv += ["--initial-samples", str(tmp / "initial.parquet"), "--train", str(tmp / "train.parquet"), *args[1:]]
    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_summary_numbers(corpus, capsys):
    rc, out, _ = _run(capsys, corpus, "summary", "--json")
    assert rc == 0
    d = json.loads(out)
    assert d["questions"] == 3 and d["traces"] == 9
    assert d["finish_reasons"] == {"stop": 5, "eos": 1, "length": 3}
    # threshold 0.5: only q0's best trace (rho 0.9) passes
    assert d["selected_traces"] == 1 and d["questions_selected"] == 1
    assert d["questions_dropped"] == {"best weight rho <= 0.5": 1, "no trace reached the answer delimiter": 1}
    assert d["top_weight"]["median"] == pytest.approx(0.4 / 0.9)  # q1: 0.4 / (0.3 + 0.2 + 0.4)
    # right: q0 "+4=7-9=8", q1 "+1+1=3" and "+1=2+1=3" (the question's first digit is the start value)
    assert d["verified_valid_traces"] == pytest.approx(3 / 9)
    assert d["verified_valid_selected"] == 1.0
    # pi_0's accuracy: q0 0.75 (>=.75), q1 0.25 (.25-.5), q2 0.5 (.5-.75)
    assert {b: v["questions"] for b, v in d["bins"].items()} == {"<.25": 0, ".25-.5": 1, ".5-.75": 1, ">=.75": 1}
    assert d["bins"][">=.75"]["selected_weight_share"] == 1.0
    esses = [1 / (0.9**2 + 0.1**2), (0.9**2) / (0.3**2 + 0.2**2 + 0.4**2)]
    assert d["ess_over_k"]["mean"] == pytest.approx(np.mean(esses) / 3)


def test_show_lists_every_trace_with_its_terms(corpus, capsys):
    rc, out, _ = _run(capsys, corpus, "show", "q1", "--json")
    d = json.loads(out)
    assert d["question"] == "1+1+1" and d["reference"] == {"trace": "+1+1=3", "answer": "33"}
    assert [t["trace"] for t in d["traces"]] == ["+1+1=3", "+1=2+1=4", "+1=2+1=3"]
    assert [t["weight"] for t in d["traces"]] == pytest.approx([0.3 / 0.9, 0.2 / 0.9, 0.4 / 0.9])
    assert all(t["log_pi"] == -0.75 and t["log_q"] == -0.5 and not t["selected"] for t in d["traces"])
    rc, out, _ = _run(capsys, corpus, "show", "q1")
    assert rc == 0 and "+1=2+1=4" in out and "reference trace: +1+1=3" in out
    rc, _, err = _run(capsys, corpus, "show", "nope")
    assert rc == 2 and "'nope' is not in this corpus" in err


def test_filters_and_export(corpus, capsys, tmp_path):
    rc, out, _ = _run(capsys, corpus, "list", "--selected", "--json")
    assert [(r["question_id"], r["sample_index"]) for r in json.loads(out)["rows"]] == [("q0", 0)]
    rc, out, _ = _run(capsys, corpus, "list", "--dropped", "--bin", ".25-.5", "--min-weight", "0.25", "--json")
    assert [r["sample_index"] for r in json.loads(out)["rows"]] == [0, 2]
    rc, out, _ = _run(capsys, corpus, "list", "--grep", "+1=2", "--json")
    assert json.loads(out)["matched"] == 2
    out_file = tmp_path / "sub.jsonl"
    rc, _, err = _run(capsys, corpus, "export", "--dropped", "--max-weight", "0.2", "--out", str(out_file))
    lines = [json.loads(x) for x in out_file.read_text().splitlines()]
    assert rc == 0 and "wrote 5 traces" in err
    assert sorted((r["question_id"], r["sample_index"]) for r in lines) == [
        ("q0", 1),
        ("q0", 2),
        ("q2", 0),
        ("q2", 1),
        ("q2", 2),
    ]
    pq = tmp_path / "sub.parquet"
    _run(capsys, corpus, "export", "--selected", "--out", str(pq))
    assert pd.read_parquet(pq)["trace"].tolist() == ["+4=7-9=8"]
    rc, _, err = _run(capsys, corpus, "list", "--bin", "hard")
    assert rc == 2 and "--bin 'hard'" in err

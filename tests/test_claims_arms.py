"""The claims arms' building blocks against brute force: selection by rho~ or by a filter, the
answer-term score, valid-only selection, offline GRPO weights, RFT capped per question, the oracle
set; and the plan's family tests (Holm over paired t and sign-flip)."""

from __future__ import annotations

import copy
import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO
from varreason import claims as VC
from varreason.claims_tests import across_seeds, adjust_family
from varreason.corpus import select_for, select_traces, soft_probabilities
from varreason.stages.build import grpo_weights
from varreason.task import fine_trace, trace_check

PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())


def _table(rng: np.random.Generator, n_q: int = 6, k: int = 4) -> pd.DataFrame:
    lw = rng.normal(-1.0, 1.5, size=(n_q, k))
    lw[0, 1] = -math.inf  # a trace of zero weight
    lw[1, :] = -math.inf  # a question of zero weight
    return pd.DataFrame(
        dict(
            question_id=np.repeat([f"q{i}" for i in range(n_q)], k),
            sample_index=np.tile(np.arange(k), n_q),
            log_weight=lw.ravel(),
            log_likelihood=rng.normal(-0.7, 0.5, size=n_q * k),
        )
    )


def test_soft_weights_sum_to_one_per_question_and_equal_rho_tilde():
    df = _table(np.random.default_rng(0))
    live = df[np.isfinite(df["log_weight"])]
    p = soft_probabilities(live["log_weight"], live["question_id"])
    sums = p.groupby(live["question_id"]).sum()
    assert np.allclose(sums.to_numpy(), 1.0) and len(sums) == 5
    for _, g in live.groupby("question_id"):  # brute force: exp(lw) / sum exp(lw)
        w = np.exp(g["log_weight"].to_numpy())
        assert p.loc[g.index].to_numpy() == pytest.approx(w / w.sum())


def test_soft_selection_draws_traces_in_proportion_to_rho_tilde():
    df = _table(np.random.default_rng(1), n_q=3, k=4)
    live = df[np.isfinite(df["log_weight"])]
    p = soft_probabilities(live["log_weight"], live["question_id"])
    counts = pd.Series(0, index=df.index)
    n = 3000
    for seed in range(n):
        sel = select_traces(df, "soft", 0.5, seed=seed)
        assert sel["question_id"].tolist() == ["q0", "q2"] and (sel["train_weight"] == 1).all()
        counts.loc[sel.index] += 1
    freq = counts.loc[p.index] / n
    # 3000 draws: a frequency's SE is at most 0.009; 4 SE
    assert np.abs(freq - p).max() < 0.037
    assert counts.loc[1] == 0  # the zero-weight trace is never drawn


def test_filter_draws_uniformly_among_traces_above_the_threshold_and_score_picks_the_column():
    df = pd.DataFrame(
        dict(
            question_id=["a"] * 4,
            log_weight=np.log([0.9, 0.8, 0.3, 0.7]),
            log_likelihood=np.log([0.2, 0.6, 0.95, 0.7]),
        )
    )
    counts = np.zeros(4)
    for seed in range(2000):
        counts[select_traces(df, "filter", 0.5, seed=seed).index[0]] += 1
    assert counts[2] == 0 and np.abs(counts[[0, 1, 3]] / 2000 - 1 / 3).max() < 0.045
    # the answer term alone ranks the traces differently from the log-weight
    assert select_traces(df, "argmax", 0.5).index.tolist() == [0]
    assert select_traces(df, "argmax", 0.5, score="log_likelihood").index.tolist() == [2]
    assert select_traces(df, "threshold", 0.96, score="log_likelihood").empty


def test_valid_only_selects_among_fully_right_traces():
    q = "3+4-2+9"
    good = fine_trace(q, 10)
    assert trace_check(q, good, 10)[0]
    bad = good.replace("=7", "=8", 1)
    df = pd.DataFrame(
        dict(question_id=["a", "a"], question=[q, q], trace=[bad, good], log_weight=np.log([0.9, 0.6]), weight=0.5)
    )
    params = copy.deepcopy(PARAMS)
    params["select"].update(mode="threshold", threshold=0.5)
    assert select_for(df, params).index.tolist() == [0]
    params["select"]["valid_only"] = True
    assert select_for(df, params).index.tolist() == [1]
    params["task"]["source"] = "x.jsonl"
    with pytest.raises(ValueError, match="valid_only"):
        select_for(df, params)
    params["select"]["score"] = "nope"
    with pytest.raises(ValueError, match="select.score 'nope'"):
        select_for(df, params)


def test_grpo_weights_equal_the_positive_advantages_by_hand():
    qid = pd.Series(["a"] * 4 + ["b"] * 4 + ["c"] * 4)
    correct = pd.Series([1, 0, 0, 0] + [1, 1, 0, 0] + [1, 1, 1, 1]).astype(bool)
    w = grpo_weights(correct, qid)
    # advantages of correct samples: (1 - p) / sqrt(p (1 - p)): a p = 1/4 -> sqrt(3), b p = 1/2 -> 1, c p = 1 -> none
    raw = np.array([math.sqrt(3), 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0])
    expected = raw / raw[raw > 0].mean()
    assert w.to_numpy() == pytest.approx(expected)
    assert w[w > 0].mean() == pytest.approx(1.0)


def _family_rows(diffs: list[dict]) -> list[dict]:
    return adjust_family([across_seeds(d) for d in diffs], alpha=0.05)


def test_family_tests_match_brute_force_and_holm():
    rng = np.random.default_rng(3)
    diffs = [dict(enumerate(rng.normal(mu, 0.05, size=10))) for mu in (0.10, 0.02, -0.01)]
    rows = _family_rows(diffs)
    for d, r in zip(diffs, rows, strict=True):
        x = np.array(list(d.values()))
        flips = [
            abs(sum(s * v for s, v in zip(signs, x, strict=True))) for signs in itertools.product((1, -1), repeat=10)
        ]
        assert r["p_sign"] == pytest.approx(np.mean(np.array(flips) >= abs(x.sum()) - 1e-12))
        assert r["n"] == 10 and r["seeds_positive"] == int((x > 0).sum())
    # Holm by hand: sorted p times (3, 2, 1), running maximum
    for key in ("p_t", "p_sign"):
        p = np.array([r[key] for r in rows])
        order = np.argsort(p)
        adj = np.maximum.accumulate(np.minimum(1, p[order] * np.array([3, 2, 1])))
        assert np.array([r[f"{key}_holm"] for r in rows])[order] == pytest.approx(adj)
    assert rows[0]["holds"] and not rows[2]["holds"]  # a clear gain holds, a negative one never


def test_five_seeds_cannot_pass_a_sign_flip_test_at_five_percent():
    rows = _family_rows([dict(enumerate([0.3, 0.31, 0.29, 0.33, 0.32]))])
    assert rows[0]["p_sign"] == pytest.approx(2 / 32) and not rows[0]["holds"]
    assert rows[0]["p_t"] < 1e-4  # the t-test alone would call it


def test_the_repository_plan_is_valid_and_registers_ten_seeds_for_the_primary_arms(tmp_path):
    plan = VC.load_plan(REPO / VC.PLAN)
    for arm in plan.tiers["primary"]["arms"]:
        assert len(plan.arm_seeds(arm)) >= 10
    for c in plan.families["primary"]:
        assert {c["a"], c["b"]} <= set(plan.tiers["primary"]["arms"])
    for arm in plan.tiers["decomposition"]["arms"]:
        assert len(plan.arm_seeds(arm)) >= 5
    bad = yaml.safe_load((REPO / VC.PLAN).read_text())
    bad["tiers"]["primary"]["arms"].append("vr-nope")
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(VC.PlanError, match="unknown arm 'vr-nope'"):
        VC.load_plan(tmp_path / "plan.yaml")
    bad = yaml.safe_load((REPO / VC.PLAN).read_text())
    bad["tiers"]["decomposition"]["seeds"] = []
    (tmp_path / "plan.yaml").write_text(json.dumps(bad))
    with pytest.raises(VC.PlanError, match="not an arm of any tier with seeds"):
        VC.load_plan(tmp_path / "plan.yaml")

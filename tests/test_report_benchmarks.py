"""The report's benchmarks section: numbers from metrics/benchmarks/ into summary.json and summary.md."""

from __future__ import annotations

import json

import pytest

from varreason.io import InputError
from varreason.report_benchmarks import benchmarks_html, load_benchmark_metrics
from varreason.stages.report import report

HELD_OUT = {"n_questions": 10, "greedy_acc": 0.5, "greedy_acc_se": 0.16, "avg@2": 0.4, "pass@1": 0.4, "pass@2": 0.6}
MATH = {"n_questions": 30, "greedy_acc": 0.1, "greedy_acc_se": 0.05, "avg@32": 0.125, "pass@1": 0.125, "model": "x"}
CODE = {
    "n_questions": 3, "greedy_acc": 1 / 3, "greedy_acc_se": 0.27, "avg@8": 0.25, "pass@1": 0.25, "pass@8": 2 / 3,
    "verdicts": {"greedy": {"pass": 1, "fail": 1, "timeout": 1, "error": 0},
                 "sampled": {"pass": 6, "fail": 10, "timeout": 6, "error": 2}},
    "groups": {"easy": {"n_questions": 1, "greedy_acc": 1.0, "greedy_acc_se": 0.0, "avg@8": 0.75, "pass@1": 0.75,
                        "pass@8": 1.0}},
}  # fmt: skip


def write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def test_benchmarks_go_into_the_summary_and_the_page(tmp_path):
    evals = {m: write(tmp_path / f"eval-{m}.json", HELD_OUT) for m in ("initial", "vr-gml")}
    weights = {"gml": write(tmp_path / "w.json", {"ess_over_k_mean": 0.5, "top_weight_median": 0.7,
                                                   "log_ratio_mean": -1.0, "log_likelihood_mean": -2.0,
                                                   "questions_with_any_weight": 0.9})}  # fmt: skip
    bench = {
        "aime24": {m: write(tmp_path / m / "aime24.json", MATH) for m in ("vr-gml", "initial")},
        "livecodebench": {m: write(tmp_path / m / "lcb.json", CODE) for m in ("vr-gml", "initial")},
    }
    page = report(evals, weights, {}, tmp_path / "summary.json", tmp_path / "summary.md", bench_metrics=bench)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["benchmarks"]["livecodebench"]["vr-gml"]["pass@8"] == pytest.approx(2 / 3)
    assert summary["benchmarks"]["aime24"]["initial"]["avg@32"] == 0.125
    aime = page.split("### aime24")[1].split("###")[0]
    assert "| initial | 10.0 ± 5.0 | 12.5 | 12.5 | 30 |" in aime and "timeouts" not in aime  # math: no verdict columns
    lcb = page.split("### livecodebench")[1]
    assert "| vr-gml | 33.3 ± 27.0 | 25.0 | 25.0 | 66.7 | 3 | 1 / 6 | 0 / 2 |" in lcb
    assert "| vr-gml: easy | 100.0 ± 0.0 | 75.0 | 75.0 | 100.0 | 1 |  |  |" in lcb
    assert lcb.index("| initial |") < lcb.index("| vr-gml |")  # the run's model order
    html = benchmarks_html(load_benchmark_metrics(bench))
    assert "<h3>livecodebench</h3>" in html and "1 / 6" in html


def test_no_benchmarks_no_section(tmp_path):
    evals = {"initial": write(tmp_path / "e.json", HELD_OUT)}
    page = report(evals, {}, {}, tmp_path / "s.json", tmp_path / "s.md")
    assert "Benchmarks" not in page and json.loads((tmp_path / "s.json").read_text())["benchmarks"] == {}


def test_a_missing_benchmark_file_is_named(tmp_path):
    with pytest.raises(InputError, match=r"sft/mmlu_pro.json: benchmark metrics not found .* sft on mmlu_pro"):
        load_benchmark_metrics({"mmlu_pro": {"sft": tmp_path / "sft/mmlu_pro.json"}})

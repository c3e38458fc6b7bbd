"""The report page: its computations against values worked out here, the page of a made-up run, and
the smoke run's page opened in headless Chromium (Debian's package, installed here when missing)."""

from __future__ import annotations

import html
import json
import math
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from varreason import paths as P
from varreason import report_page as RP
from varreason.stages.report import report_html

# ---- computations on small made-up tables ----------------------------------------------------


def test_implicit_weights_per_question():
    acc = pd.Series([0.0, 0.25, 0.5, 0.75, 1.0], index=list("abcde"))
    w = RP.implicit_weights(acc)
    assert w["uniform"].tolist() == [1.0] * 5
    assert w["rft"].tolist() == acc.tolist()
    # sqrt(acc / (1 - acc)) inside (0, 1); 0 at both ends (every reward equal: zero advantage)
    assert np.allclose(w["grpo"], [0.0, math.sqrt(1 / 3), 1.0, math.sqrt(3), 0.0])


def test_weight_shares_per_difficulty_bin():
    # bins [0, .25), [.25, .5), [.5, .75), [.75, 1]: 2, 2, 1 and 3 questions
    acc = pd.Series([0.0, 0.1, 0.3, 0.4, 0.6, 0.8, 0.9, 1.0])
    selected = pd.DataFrame({"initial_acc": [0.1, 0.3, 0.3, 0.9], "train_weight": [1.0, 0.5, 0.5, 2.0]})
    s = RP.weight_shares(acc, {"vr-gml": selected}).set_index("bin")
    assert s["questions"].tolist() == [2, 2, 1, 3]
    assert np.allclose(s["uniform"], [2 / 8, 2 / 8, 1 / 8, 3 / 8])
    rft = np.array([0.0 + 0.1, 0.3 + 0.4, 0.6, 0.8 + 0.9 + 1.0])
    assert np.allclose(s["rft"], rft / rft.sum())
    g = lambda a: math.sqrt(a / (1 - a))  # noqa: E731
    grpo = np.array([g(0.1), g(0.3) + g(0.4), g(0.6), g(0.8) + g(0.9)])  # acc 0 and 1 weigh nothing
    assert np.allclose(s["grpo"], grpo / grpo.sum())
    assert np.allclose(s["vr-gml"], [1 / 4, 1 / 4, 0.0, 2 / 4])
    assert np.allclose(s["difficulty"], [0.125, 0.375, 0.625, 0.875])
    # the headline: RFT and GRPO move weight to the easy questions, away from uniform
    assert s["rft"].iloc[-1] > s["uniform"].iloc[-1] and s["grpo"].iloc[0] < s["uniform"].iloc[0]


def test_accuracy_by_bin_uses_pi0_sampled_accuracy():
    ids = ["q1", "q2", "q3", "q4"]
    initial = pd.DataFrame({"greedy": [0.0, 1.0, 0.0, 1.0], "pass1": [0.0, 0.2, 0.5, 0.5]}, index=ids)
    other = pd.DataFrame({"greedy": [1.0, 1.0, 0.0, 0.0], "pass1": [1.0, 1.0, 1.0, 1.0]}, index=ids)
    t = RP.accuracy_by_bin({"initial": initial, "vr-gml": other}).set_index("bin")
    assert t["questions"].tolist() == [2, 0, 2, 0]  # bins by initial's pass1, never the other model's
    assert t.loc["<.25", "initial"] == 0.5 and t.loc["<.25", "vr-gml"] == 1.0
    assert t.loc[".5-.75", "initial"] == 0.5 and t.loc[".5-.75", "vr-gml"] == 0.0
    assert t[["initial", "vr-gml"]].loc[[".25-.5", ">=.75"]].isna().all().all()


def test_histogram_drops_zero_weights_and_shares_bins():
    values = {"gml": np.array([-3.0, -1.0, -1.0, -np.inf]), "acc": np.array([0.0, -np.inf])}
    edges = RP.span_edges(values, n=3)
    assert edges[0] == -3.0 and edges[-1] == 0.0
    h = RP.histogram(values, edges, "log_weight")
    assert h["gml"].tolist() == [1, 0, 2] and h["acc"].tolist() == [0, 0, 1]
    assert np.allclose(h["log_weight"], [-2.5, -1.5, -0.5])


def test_loss_table_joins_steps():
    t = RP.loss_table(
        {
            "initial": [{"step": 1, "loss": 3.0, "smoothed_loss": 3.0}, {"step": 50, "loss": 1.0, "smoothed_loss": 2}],
            "sft": [{"step": 1, "loss": 1.5}],
        }
    )
    assert t.columns.tolist() == ["step", "initial", "sft"]
    assert t["step"].tolist() == [1, 50]
    assert t["initial"].tolist() == [3.0, 2.0]
    assert t["sft"].iloc[0] == 1.5 and np.isnan(t["sft"].iloc[1])


# ---- the page of a made-up run ---------------------------------------------------------------


def _write_json(obj, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def _eval_rows(correct_greedy: list[int], correct_sampled: list[list[int]]) -> pd.DataFrame:
    rows = []
    for i, (g, s) in enumerate(zip(correct_greedy, correct_sampled, strict=True)):
        rows.append({"question_id": f"t{i}", "decoding": "greedy", "correct": bool(g)})
        rows += [{"question_id": f"t{i}", "decoding": "sampled", "correct": bool(c)} for c in s]
    return pd.DataFrame(rows)


@pytest.fixture
def made_up_run(tmp_path):
    """Every file report_html reads, for 4 training questions (K = 2), 3 test questions, 2 models."""
    evals, samples, dirs = {}, {}, {}
    greedy = {"initial": [0, 1, 0], "vr-gml": [1, 1, 0]}
    sampled = [[0, 0], [1, 0], [1, 1]]  # pi_0's avg@2 on the test questions: bins 0, 2, 3
    for i, m in enumerate(greedy):
        g = np.mean(greedy[m])
        evals[m] = _write_json(
            {"model": m, "n_questions": 3, "greedy_acc": g, "greedy_acc_se": 0.1 + i / 100, "avg@2": 0.5 - i / 10},
            tmp_path / f"eval-{m}.json",
        )
        samples[m] = tmp_path / f"eval-{m}.parquet"
        _eval_rows(greedy[m], sampled).to_parquet(samples[m])
        dirs[m] = tmp_path / m
        _write_json({"history": [{"step": 1, "loss": 2.0 - i, "smoothed_loss": 2.0 - i}]}, dirs[m] / "train_log.json")
    weights = {
        "gml": _write_json(
            {
                "ess_over_k_mean": 0.75,
                "top_weight_median": 0.6,
                "log_ratio_mean": -0.1,
                "log_likelihood_mean": -1.0,
                "questions_with_any_weight": 0.75,
            },
            tmp_path / "weights-gml.json",
        )
    }
    sets = {"vr-gml": _write_json({"n_examples": 7, "n_selected": 3}, tmp_path / "set-vr-gml.json")}
    corpus = pd.DataFrame(
        {
            "question_id": ["a", "a", "b", "b", "c", "c", "d", "d"],
            "sample_index": [0, 1] * 4,
            "question": ["1+1", "1+1", "2<3 & x", "2<3 & x", "3+3", "3+3", "4+4", "4+4"],
            "answer": ["2", "2", "1", "1", "6", "6", "8", "8"],
            "trace": ["1+1=2", "<b>bold</b>", "t", "u", "v", "w", "x", "y"],
            "finish_reason": ["stop"] * 7 + ["length"],
            "log_weight": [-1.0, -2.0, -0.5, -0.5, -3.0, -1.0, -np.inf, -np.inf],
        }
    )
    corpus["weight"] = corpus.groupby("question_id")["log_weight"].transform(
        lambda s: np.exp(s - s.max()) / np.exp(s - s.max()).sum() if np.isfinite(s).any() else 0.0
    )
    corpus["ess"] = corpus.groupby("question_id")["weight"].transform(lambda w: 1 / (w**2).sum() if w.sum() else 0)
    corpus.to_parquet(tmp_path / "weighted-gml.parquet")
    # pi_0's own accuracy on the training questions: a 0, b 0.5, c 1, d 0.5
    own = pd.DataFrame({"question_id": list("aabbccdd"), "correct": [0, 0, 1, 0, 1, 1, 0, 1]})
    own.to_parquet(tmp_path / "own.parquet")
    params = {"seed": 0, "sampling": {"k": 2}, "select": {"mode": "argmax", "threshold": 0.0}}
    params["task"] = {"source": "synthetic"}
    out = report_html(
        params,
        evals,
        weights,
        sets,
        corpora={"gml": tmp_path / "weighted-gml.parquet"},
        initial_samples=[tmp_path / "own.parquet"],
        eval_samples=samples,
        model_dirs=dirs,
        html_out=tmp_path / "reports" / "report.html",
        plots_dir=tmp_path / "reports" / "plots",
        examples_per_bin=5,
    )
    return out, evals


def test_made_up_run_page_and_plot_data(made_up_run):
    page_path, evals = made_up_run
    page = page_path.read_text()
    plots = page_path.parent / "plots"
    for name in P.PAGE_PLOTS:
        assert (plots / f"{name}.csv").stat().st_size > 0
        assert (plots / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # one image per plot, each a data URI; nothing to fetch
    srcs = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert len(srcs) == len(P.PAGE_PLOTS) and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r"<script|<link|@import|https?://", page)
    # the results table holds the metrics
    for m, path in evals.items():
        metrics = json.loads(path.read_text())
        row = re.search(rf'<tr data-row="{m}">(.*?)</tr>', page).group(1)
        assert f'<td data-col="greedy_acc">{100 * metrics["greedy_acc"]:.1f} ± ' in row
        assert f'<td data-col="avg@2">{100 * metrics["avg@2"]:.1f}</td>' in row
    # traces and questions are escaped
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold</b>" not in page
    assert "2&lt;3 &amp; x" in page
    # argmax selection: one trace per question with a finite weight (a, b, c), bins 0, 2, 3 by own accuracy
    shares = pd.read_csv(plots / "implicit_weights.csv").set_index("bin")
    assert np.allclose(shares["vr-gml"], [1 / 3, 0, 1 / 3, 1 / 3])
    assert np.allclose(shares["rft"], [0, 0, 1 / 2, 1 / 2])  # acc 0, .5, .5, 1
    assert np.allclose(shares["grpo"], [0, 0, 1, 0])  # only acc .5 has a gradient
    by_bin = pd.read_csv(plots / "accuracy_by_bin.csv").set_index("bin")
    assert by_bin["questions"].tolist() == [1, 0, 1, 1]
    assert by_bin.loc["<.25", "vr-gml"] == 1.0 and by_bin.loc[".5-.75", "initial"] == 1.0
    lw = pd.read_csv(plots / "log_weights.csv")
    assert lw["gml"].sum() == 6  # the two -inf log-weights are not drawn


# ---- the smoke run's page in headless Chromium -----------------------------------------------

CHECK_SCRIPT = """<script>
window.addEventListener("load", () => {
  const images = [...document.images].map((i) => ({alt: i.alt, complete: i.complete, width: i.naturalWidth}));
  const rows = {};
  for (const tr of document.querySelectorAll("#results tbody tr")) {
    const cells = [...tr.querySelectorAll("td")];
    rows[tr.dataset.row] = Object.fromEntries(cells.map((td) => [td.dataset.col, td.textContent]));
  }
  const out = document.createElement("pre");
  out.id = "browser-check";
  out.textContent = JSON.stringify({images, rows});
  document.body.appendChild(out);
});
</script>"""


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium; installed with apt-get when missing (root only)."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe:
        return exe
    if os.geteuid() != 0:
        pytest.skip(
            "needs Debian's chromium: it is not installed and only root can install it (apt-get install chromium)"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"]
    r = subprocess.run(install, env=env, capture_output=True, text=True)
    if r.returncode != 0:  # a fresh machine has no package lists yet
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, text=True)
        r = subprocess.run(install, env=env, capture_output=True, text=True)
    assert r.returncode == 0, f"apt-get install chromium failed:\n{r.stdout[-2000:]}{r.stderr[-2000:]}"
    return shutil.which("chromium")


def headless(chromium: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        chromium,
        "--headless",
        "--no-sandbox",  # root in a container
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        *args,
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


@pytest.mark.slow
def test_smoke_run_page_in_headless_chromium(smoke_run, chromium, tmp_path):
    from PIL import Image

    work, _ = smoke_run
    page = work / P.REPORT_HTML
    # a screenshot of the page as it is
    shot = tmp_path / "report.png"
    headless(chromium, tmp_path, "--window-size=1280,2000", f"--screenshot={shot}", page.as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(shot) as im:
        assert im.size == (1280, 2000)
        colors = im.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colors is not None and len(colors) > 100, "the screenshot is (nearly) blank"
    # the same page with a script that records, once everything has loaded, every image and table cell
    probe = tmp_path / "report-probe.html"
    probe.write_text(page.read_text().replace("</body>", CHECK_SCRIPT + "</body>"))
    dom = headless(chromium, tmp_path, "--dump-dom", probe.as_uri()).stdout
    found = re.search(r'<pre id="browser-check">(.*?)</pre>', dom, flags=re.S)
    assert found, "the check script did not run"
    check = json.loads(html.unescape(found.group(1)))
    assert len(check["images"]) == len(P.PAGE_PLOTS)
    for img in check["images"]:
        assert img["complete"] and img["width"] > 0, f"plot {img['alt']} did not load"
    # the results table holds the run's numbers, read here from metrics/eval/*.json
    rows = check["rows"]
    assert set(rows) == set(P.EVAL_MODELS)
    for model in P.EVAL_MODELS:
        metrics = json.loads((work / P.EVAL_METRICS.format(model=model)).read_text())
        cells = rows[model]
        assert cells["greedy_acc"] == f"{100 * metrics['greedy_acc']:.1f} ± {100 * metrics['greedy_acc_se']:.1f}"
        keys = [k for k in metrics if k.startswith(("avg@", "pass@"))]
        assert keys
        for key in keys:
            assert cells[key] == f"{100 * metrics[key]:.1f}", (model, key)


@pytest.mark.slow
def test_smoke_run_plot_data_from_the_run_files(smoke_run):
    """Accuracy by bin and the RFT/GRPO shares recomputed here from the run's Parquet files."""
    work, _ = smoke_run
    ev = {m: pd.read_parquet(work / P.EVAL_SAMPLES.format(model=m)) for m in P.EVAL_MODELS}
    init = ev["initial"]
    own = init[init["decoding"] == "sampled"].groupby("question_id")["correct"].mean()
    bins = np.searchsorted([0.25, 0.5, 0.75], own.to_numpy(), side="right")
    table = pd.read_csv(work / P.PAGE_PLOT_DATA.format(plot="accuracy_by_bin"))
    assert table["questions"].tolist() == np.bincount(bins, minlength=4).tolist()
    for m, df in ev.items():
        greedy = df[df["decoding"] == "greedy"].set_index("question_id")["correct"].reindex(own.index).astype(float)
        expect = [greedy[bins == i].mean() if (bins == i).any() else np.nan for i in range(4)]
        assert np.allclose(table[m], expect, equal_nan=True), m
    shards = sorted((work / "data" / "traces" / "initial").glob("shard-*.parquet"))
    acc = pd.concat([pd.read_parquet(p, columns=["question_id", "correct"]) for p in shards])
    acc = acc.groupby("question_id")["correct"].mean().to_numpy()
    tb = np.searchsorted([0.25, 0.5, 0.75], acc, side="right")
    shares = pd.read_csv(work / P.PAGE_PLOT_DATA.format(plot="implicit_weights"))
    rft = np.array([acc[tb == i].sum() for i in range(4)])
    assert np.allclose(shares["rft"], rft / rft.sum())
    inner = (acc > 0) & (acc < 1)
    grpo_w = np.where(inner, np.sqrt(np.where(inner, acc, 0) / np.where(inner, 1 - acc, 1)), 0.0)
    grpo = np.array([grpo_w[tb == i].sum() for i in range(4)])
    assert np.allclose(shares["grpo"], grpo / grpo.sum())
    assert np.allclose(shares["uniform"], np.bincount(tb, minlength=4) / len(acc))
    for name in ("vr-gml", "vr-acc"):
        assert np.isclose(shares[name].sum(), 1.0) or shares[name].sum() == 0


@pytest.mark.slow
def test_snakemake_report_of_the_smoke_run(smoke_run, tmp_path):
    work, _ = smoke_run
    out = tmp_path / "report.zip"
    r = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(work)]
        + ["--report", str(out)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    names = zipfile.ZipFile(out).namelist()
    assert "report/report.html" in names
    for f in [Path(P.REPORT_HTML).name, *(f"{p}.png" for p in P.PAGE_PLOTS)]:
        assert any(n.endswith("/" + f) and n != "report/report.html" for n in names), f

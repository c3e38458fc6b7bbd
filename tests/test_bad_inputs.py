"""Bad input, kind by kind (issue 8): a clear error naming the file, row or key; a non-zero exit; no
half-written output. All-(-inf)/NaN weights are the exception: dropped, counted, and the stage goes on.

Each case builds its tiny input, runs the ``varreason`` command (in-process through ``cli.main``, or
as a subprocess where the failure must be real: a read-only mount), and checks the message, the exit
code, and that neither the output nor a temp file beside it exists.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, TINY
from varreason.cli import main
from varreason.io import OutputError, write_dir_atomic
from varreason.modeling import build_char_tokenizer, build_tiny_qwen3, save_model_atomic
from varreason.prompting import prompter_for

PARAMS = yaml.safe_load((REPO / "workflow" / "presets" / "smoke.yaml").read_text())


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A run folder: params.yaml, a tiny saved model, a good trace corpus and a good scored shard."""
    w = tmp_path_factory.mktemp("bad-inputs")
    (w / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    tok = build_char_tokenizer()
    save_model_atomic(build_tiny_qwen3(TINY, tok, seed=0), tok, w / "model")
    pi = prompter_for(PARAMS, tok)
    rows = []
    for i in range(3):
        q, a = f"{i}+1", str(i + 1)
        ids = pi.encode(f"+1={a}")
        rows.append(
            dict(
                question_id=f"q{i}",
                sample_index=0,
                question=q,
                answer=a,
                gold=a,
                prompt=pi.posterior(q, a),
                trace_token_ids=ids,
                finish_reason="stop",
                sample_logps=[-1.0] * len(ids),
            )
        )
    pd.DataFrame(rows).to_parquet(w / "traces.parquet")
    pd.DataFrame(
        dict(
            question_id=["a", "a", "b", "b", "c", "c"],
            sample_index=[0, 1, 0, 1, 0, 1],
            prior_logps=[[-1.0], [-0.5], [float("nan")], [-0.2], [-1.0], [-1.0]],
            posterior_logps=[[-0.5], [-0.5], [-0.1], [-0.2], [-1.0], [-1.0]],
            answer_logps=[[-0.1], [-0.3], [-0.2], [-0.3], [], []],
            finish_reason=["stop", "stop", "stop", "stop", "length", "length"],
        )
    ).to_parquet(w / "scored.parquet")
    return w


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _dataset_rows(n: int = 6) -> list[dict]:
    return [{"question": f"{i}+1", "trace": f"+1={i + 1}", "answer": str(i + 1)} for i in range(n)]


def _prepare(w: Path, out: Path, *sets: str) -> list[str]:
    return [
        "--params",
        str(w / "params.yaml"),
        *(a for s in sets for a in ("--set", s)),
        "prepare",
        "--train-out",
        str(out / "train.parquet"),
        "--test-out",
        str(out / "test.parquet"),
    ]


# Each case: (work folder, case folder) -> (argv, outputs that must not exist, strings the error contains)


def case_params_unknown_and_mistyped(w, d):
    params = json.loads(json.dumps(PARAMS))
    params["sampling"]["temprature"] = 0.7  # unknown (mistyped) key
    params["sampling"]["k"] = "eight"  # mistyped value
    (d / "params.yaml").write_text(yaml.safe_dump(params))
    argv = _prepare(w, d)
    argv[1] = str(d / "params.yaml")
    says = [f"{d / 'params.yaml'}: invalid parameters", "sampling: unknown key(s)", "'temprature'", "sampling.k:"]
    return argv, [d / "train.parquet", d / "test.parquet"], says


def case_dataset_row_without_answer(w, d):
    rows = _dataset_rows()
    del rows[2]["answer"]
    src = _jsonl(d / "data.jsonl", rows)
    says = [f"{src}: row 2: missing or empty column 'answer'"]
    return _prepare(w, d, f"task.source={src}", "task.n_test=2"), [d / "train.parquet", d / "test.parquet"], says


def case_empty_question(w, d):
    rows = _dataset_rows()
    rows[1]["question"] = "   "
    src = _jsonl(d / "data.jsonl", rows)
    says = [f"{src}: row 1: missing or empty column 'question'"]
    return _prepare(w, d, f"task.source={src}", "task.n_test=2"), [d / "train.parquet", d / "test.parquet"], says


def case_non_utf8_dataset(w, d):
    src = d / "data.jsonl"
    good = "".join(json.dumps(r) + "\n" for r in _dataset_rows())
    src.write_bytes(good.encode() + b'{"question": "caf\xe9", "trace": "x", "answer": "1"}\n')
    offset = len(good.encode()) + len(b'{"question": "caf')
    says = [f"{src}: not UTF-8 text: byte 0xe9 at line 7, byte offset {offset}"]
    return _prepare(w, d, f"task.source={src}", "task.n_test=2"), [d / "train.parquet", d / "test.parquet"], says


def case_non_utf8_params(w, d):
    text = (w / "params.yaml").read_bytes()
    (d / "params.yaml").write_bytes(b"# caf\xe9 au lait\n" + text)
    argv = _prepare(w, d)
    argv[1] = str(d / "params.yaml")
    says = [f"{d / 'params.yaml'}: not UTF-8 text: byte 0xe9 at line 1, byte offset 5"]
    return argv, [d / "train.parquet", d / "test.parquet"], says


def case_missing_model_dir(w, d):
    missing = d / "data" / "models" / "initial"  # where train_initial writes pi_0
    argv = ["--params", str(w / "params.yaml"), "score", "--traces", str(w / "traces.parquet")]
    argv += ["--initial", str(missing), "--posterior", str(w / "model"), "--out", str(d / "scored.parquet")]
    says = [f"{missing}: model directory not found", "stage train_initial", "varreason train-initial"]
    return argv, [d / "scored.parquet"], says


def case_truncated_parquet_shard(w, d):
    data = (w / "scored.parquet").read_bytes()
    (d / "shard-1.parquet").write_bytes(data[: len(data) // 2])
    argv = ["--params", str(w / "params.yaml"), "weights", "--estimator", "gml"]
    argv += ["--scored", str(w / "scored.parquet"), str(d / "shard-1.parquet")]
    argv += ["--out", str(d / "weighted.parquet"), "--metrics", str(d / "weights.json")]
    says = [f"{d / 'shard-1.parquet'}: not a readable Parquet file, truncated or corrupt", "rerun the stage"]
    return argv, [d / "weighted.parquet", d / "weights.json"], says


def case_trace_ids_from_another_tokenizer(w, d):
    df = pd.read_parquet(w / "traces.parquet")
    df.at[1, "trace_token_ids"] = [*df.at[1, "trace_token_ids"][:-1], 151_643]  # a Qwen3 id
    df.to_parquet(d / "traces.parquet")
    argv = ["--params", str(w / "params.yaml"), "score", "--traces", str(d / "traces.parquet")]
    argv += ["--initial", str(w / "model"), "--posterior", str(w / "model"), "--out", str(d / "scored.parquet")]
    says = [
        f"{d / 'traces.parquet'}: row 1: column 'trace_token_ids': token id 151643 is out of range",
        f"tokenizer of {w / 'model'} (vocabulary size {len(build_char_tokenizer())}",
        "another tokenizer",
    ]
    return argv, [d / "scored.parquet"], says


def case_benchmark_wrong_columns(w, d):
    src = _jsonl(d / "math500.jsonl", [{"problem": "1+1", "solution": "2"}, {"problem": "2+2", "solution": "4"}])
    argv = ["--params", str(w / "params.yaml"), "--set", f"evaluate.benchmarks={{math500: {src}}}"]
    argv += ["evaluate-benchmark", "--name", "initial", "--benchmark", "math500", "--model", str(w / "model")]
    argv += ["--out", str(d / "math500.parquet"), "--metrics", str(d / "math500.json")]
    says = [f"{src}: missing column 'answer' (has: problem, solution)"]
    return argv, [d / "math500.parquet", d / "math500.json"], says


def case_disk_full(w, d, monkeypatch):
    """A real ENOSPC from the kernel: the writer's temp file is a link to /dev/full."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    os.symlink("/dev/full", d / f".train.parquet.tmp-{os.getpid()}")
    says = [f"{d / 'train.parquet'}: cannot be written: the output folder {d} is on a full disk", "[ENOSPC]"]
    return _prepare(w, d, "task.n_train=20", "task.n_test=5"), [d / "train.parquet", d / "test.parquet"], says


CASES = {
    "params-unknown-and-mistyped": case_params_unknown_and_mistyped,
    "dataset-row-without-answer": case_dataset_row_without_answer,
    "dataset-empty-question": case_empty_question,
    "dataset-not-utf8": case_non_utf8_dataset,
    "params-not-utf8": case_non_utf8_params,
    "missing-model-dir": case_missing_model_dir,
    "truncated-parquet-shard": case_truncated_parquet_shard,
    "trace-ids-from-another-tokenizer": case_trace_ids_from_another_tokenizer,
    "benchmark-wrong-columns": case_benchmark_wrong_columns,
    "disk-full-output": case_disk_full,
}


def _leftovers(folders) -> list[Path]:
    return [p for f in folders if f.exists() for p in f.iterdir() if ".tmp" in p.name]


@pytest.mark.parametrize("kind", list(CASES))
def test_bad_input_fails_clearly_and_writes_nothing(kind, work, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    case = CASES[kind]
    argv, outputs, says = case(work, tmp_path, monkeypatch) if kind == "disk-full-output" else case(work, tmp_path)
    import varreason.chunks as chunks

    def no_model_call(*a, **k):
        raise AssertionError("a model ran on a bad input")

    monkeypatch.setattr(chunks, "score", no_model_call)
    monkeypatch.setattr(chunks, "generate", no_model_call)
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    line = next((ln for ln in err.splitlines() if ln.startswith("varreason ")), "")
    assert ": error: " in line, err
    for s in says:
        assert s in err, f"{s!r} not in:\n{err}"
    assert not [p for p in outputs if p.exists()]
    assert not _leftovers({p.parent for p in outputs})


def test_read_only_output_folder(work, tmp_path):
    """A real read-only folder: a read-only bind mount (root, which ignores chmod), else chmod 555."""
    out = tmp_path / "ro"
    out.mkdir()
    cmd = [sys.executable, "-m", "varreason.cli", *_prepare(work, out, "task.n_train=20", "task.n_test=5")]
    if os.geteuid() == 0:
        if not shutil.which("unshare"):
            pytest.skip("root without unshare: cannot make a folder read-only for root")
        probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
        if probe.returncode:
            pytest.skip(f"unshare -m fails here: {probe.stderr.decode()[:200]}")
        mount = f'mount --bind {out} {out} && mount -o remount,bind,ro {out} && exec "$@"'
        cmd = ["unshare", "-m", "sh", "-c", mount, "sh", *cmd]
        says = f"the output folder {out} is on a read-only file system [EROFS]"
    else:
        out.chmod(0o555)
        says = f"the output folder {out} is not writable by this user [EACCES]"
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    out.chmod(0o755)
    assert r.returncode == 2, r.stderr[-2000:]
    assert f"varreason prepare: error: {out / 'train.parquet'}: cannot be written: " in r.stderr
    assert says in r.stderr and "Traceback" not in r.stderr
    assert not list(out.iterdir())


def test_all_minus_inf_or_nan_weights_are_dropped_and_counted(work, tmp_path, capsys):
    """a: fine; b: one NaN trace (weight zero; the other gets it all); c: no trace reached the answer
    (all -inf); d: every log-weight NaN (a broken score). c and d are dropped and counted; exit 0."""
    df = pd.read_parquet(work / "scored.parquet")
    nan = float("nan")
    d_rows = pd.DataFrame(
        dict(
            question_id=["d", "d"],
            sample_index=[0, 1],
            prior_logps=[[nan], [nan]],
            posterior_logps=[[-1.0], [-1.0]],
            answer_logps=[[-0.1], [-0.1]],
            finish_reason=["stop", "stop"],
        )
    )
    pd.concat([df, d_rows], ignore_index=True).to_parquet(tmp_path / "scored.parquet")
    out, metrics = tmp_path / "weighted.parquet", tmp_path / "weights.json"
    argv = ["--params", str(work / "params.yaml"), "weights", "--estimator", "gml"]
    argv += ["--scored", str(tmp_path / "scored.parquet"), "--out", str(out), "--metrics", str(metrics)]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "weights[gml]: 2 of 4 question(s) get zero weight and are dropped" in err
    m = json.loads(metrics.read_text())
    assert m["questions_dropped"] == 2
    assert m["questions_dropped_reasons"] == {
        "no trace reached the answer delimiter": 1,
        "NaN or +inf log-weight (a broken score)": 1,
    }
    assert m["traces_nan_or_inf"] == 3  # b's first trace and both of d's
    assert m["questions_with_any_weight"] == 0.5
    w = pd.read_parquet(out)
    assert np.isnan(w.loc[w["question_id"] == "d", "log_weight"]).all()  # raw log-weights are kept
    per_q = w.groupby("question_id")["weight"].sum()
    assert per_q["c"] == 0 and per_q["d"] == 0
    assert per_q["a"] == pytest.approx(1.0) and w.loc[w["question_id"] == "b", "weight"].tolist() == [0.0, 1.0]
    assert np.isfinite(m["iwae_bound_mean"])
    assert not _leftovers([tmp_path])


def test_failed_model_write_leaves_no_half_folder(tmp_path):
    """save_model_atomic's writer: a full disk mid-save leaves neither the folder nor its temp twin."""

    def fill(tmp: Path) -> None:
        tmp.mkdir()
        (tmp / "config.json").write_text("{}")
        raise OSError(errno.ENOSPC, "No space left on device")

    out = tmp_path / "data" / "models" / "initial"
    with pytest.raises(OutputError, match=rf"{out}: cannot be written: .* full disk .*\[ENOSPC\]"):
        write_dir_atomic(out, fill)
    assert not out.exists() and not (out.parent / "initial.tmp").exists()

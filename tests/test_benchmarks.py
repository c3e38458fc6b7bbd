"""Benchmark loaders on small files in the public datasets' layouts (no hub access)."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from varreason import benchmarks
from varreason.benchmarks import BENCHMARKS, OUTPUT_COLUMNS, benchmark_settings, get_spec, load_benchmark
from varreason.io import InputError
from varreason.verify import check_choice, check_math


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def options_of(question: str) -> dict[str, str]:
    return dict(re.findall(r"^([A-D])\) (.*)$", question, flags=re.M))


# ------------------------------------------------------------------------------------ each benchmark


def test_math500_jsonl(tmp_path):
    src = write_jsonl(
        tmp_path / "math500.jsonl",
        [
            dict(
                problem="Convert $(0,3)$ to polar coordinates.",
                solution="... $\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}$",
                answer="\\left( 3, \\frac{\\pi}{2} \\right)",
                subject="Precalculus",
                level=2,
                unique_id="test/precalculus/807.json",
            ),
            dict(
                problem="What is $1+1$?",
                solution="$\\boxed{2}$",
                answer="2",
                subject="Algebra",
                level=1,
                unique_id="test/algebra/1.json",
            ),
        ],
    )
    df = load_benchmark("math500", str(src))
    assert list(df.columns) == OUTPUT_COLUMNS
    assert df["question_id"].tolist() == ["math500/test/precalculus/807.json", "math500/test/algebra/1.json"]
    assert df["question"][0] == "Convert $(0,3)$ to polar coordinates."
    assert df["answer"].tolist() == ["\\left( 3, \\frac{\\pi}{2} \\right)", "2"]
    assert set(df["verifier"]) == {"math"} and set(df["benchmark"]) == {"math500"}
    assert check_math(df["answer"][0], "so the point is $\\boxed{(3, \\frac{\\pi}{2})}$")


def test_aime24_parquet_hf_layout(tmp_path):
    src = tmp_path / "aime24.parquet"
    pd.DataFrame(
        dict(
            id=[60, 61],
            problem=["Every morning Aya ...", "Let $ABC$ be a triangle ..."],
            solution=["...", "..."],
            answer=["204", "113"],
            url=["https://a", "https://b"],
            year=["2024", "2024"],
        )
    ).to_parquet(src)
    df = load_benchmark("aime24", str(src))
    assert df["question_id"].tolist() == ["aime24/60", "aime24/61"]
    assert df["answer"].tolist() == ["204", "113"]
    assert df["question"][1].startswith("Let $ABC$")


def test_aime24_capitalised_layout_with_integer_answers(tmp_path):
    """Maxwell-Jia/AIME_2024: ID, Problem, Solution, Answer (an integer)."""
    src = write_jsonl(
        tmp_path / "aime24_maxwell.jsonl",
        [
            dict(ID="2024-I-1", Problem="Every morning ...", Solution="...", Answer=204),
            dict(ID="2024-I-2", Problem="There exist ...", Solution="...", Answer=25),
        ],
    )
    df = load_benchmark("AIME2024", str(src))  # alias, case-insensitive
    assert df["question_id"].tolist() == ["aime24/2024-I-1", "aime24/2024-I-2"]
    assert df["answer"].tolist() == ["204", "25"]
    assert df["question"].tolist() == ["Every morning ...", "There exist ..."]


def test_aime25_jsonl_and_json(tmp_path):
    records = [
        dict(problem="Find the sum ...", answer="70", id="0"),
        dict(problem="On $\\triangle ABC$ ...", answer="588", id="1"),
    ]
    df = load_benchmark("aime25", str(write_jsonl(tmp_path / "aime25.jsonl", records)))
    assert df["question_id"].tolist() == ["aime25/0", "aime25/1"]
    assert df["answer"].tolist() == ["70", "588"]
    (tmp_path / "aime25.json").write_text(json.dumps({"test": records}))
    pd.testing.assert_frame_equal(load_benchmark("aime25", str(tmp_path / "aime25.json")), df)


def test_amc23_parquet_numeric_answers(tmp_path):
    src = tmp_path / "amc23.parquet"
    pd.DataFrame(
        dict(
            id=[0, 1, 2],
            question=["Cities A and B ...", "Positive reals ...", "What is 1/4?"],
            answer=[27.0, 36.0, 0.25],
        )
    ).to_parquet(src)
    df = load_benchmark("amc23", str(src))
    assert df["answer"].tolist() == ["27", "36", "0.25"]
    assert df["question_id"].tolist() == ["amc23/0", "amc23/1", "amc23/2"]


def gpqa_rows(n=6):
    return pd.DataFrame(
        {
            "Pre-Revision Question": [f"old {i}" for i in range(n)],
            "Question": [f"Which particle {i}?" for i in range(n)],
            "Correct Answer": [f"right {i}" for i in range(n)],
            "Incorrect Answer 1": [f"wrong1 {i}" for i in range(n)],
            "Incorrect Answer 2": [f"wrong2 {i}" for i in range(n)],
            "Incorrect Answer 3": [f"wrong3 {i}" for i in range(n)],
            "Record ID": [f"rec{i:03d}" for i in range(n)],
            "High-level domain": ["Physics"] * n,
        }
    )


def test_gpqa_diamond_csv_shuffled_choices(tmp_path):
    src = tmp_path / "gpqa_diamond.csv"
    gpqa_rows().to_csv(src, index=False)
    df = load_benchmark("gpqa_diamond", str(src), seed=0)
    assert set(df["verifier"]) == {"choice"}
    assert df["question_id"].tolist() == [f"gpqa_diamond/rec{i:03d}" for i in range(6)]
    for i, row in df.iterrows():
        assert row["question"].startswith(f"Which particle {i}?\n\nA) ")
        opts = options_of(row["question"])
        assert sorted(opts) == ["A", "B", "C", "D"]
        assert sorted(opts.values()) == sorted([f"right {i}", f"wrong1 {i}", f"wrong2 {i}", f"wrong3 {i}"])
        assert opts[row["answer"]] == f"right {i}"  # the gold letter points at the correct answer
        assert check_choice(row["answer"], f"so the answer is ({row['answer']})")

    again = load_benchmark("gpqa", str(src), seed=0)
    pd.testing.assert_frame_equal(again, df)  # deterministic per seed
    # independent of row order: the option order is keyed by the record id, not the position
    reversed_src = tmp_path / "gpqa_reversed.csv"
    gpqa_rows().iloc[::-1].to_csv(reversed_src, index=False)
    rev = load_benchmark("gpqa", str(reversed_src), seed=0).set_index("question_id")
    pd.testing.assert_frame_equal(rev.loc[df["question_id"]].reset_index()[OUTPUT_COLUMNS], df)
    # another seed reorders the options of some questions and keeps the gold pointing right
    other = load_benchmark("gpqa", str(src), seed=1)
    assert other["question"].tolist() != df["question"].tolist()
    for i, row in other.iterrows():
        assert options_of(row["question"])[row["answer"]] == f"right {i}"
    # over many seeds every letter is used as the gold (the shuffle is not a fixed rotation)
    golds = {load_benchmark("gpqa", str(src), seed=s)["answer"][0] for s in range(12)}
    assert golds == {"A", "B", "C", "D"}


def olympiad_frame():
    base = dict(
        solution=[["..."]] * 5,
        context=[None] * 5,
        image_2=[None] * 5,
        is_multiple_answer=[False, True, False, False, False],
        unit=[None] * 5,
        answer_type=["Numerical"] * 5,
        error=[None] * 5,
        question_type=["Open-ended"] * 4 + ["Theorem proof"],
        subfield=["Algebra"] * 5,
    )
    return pd.DataFrame(
        dict(
            id=[1606, 1607, 1608, 1609, 1610],
            question=["Find $x$ ...", "Find all $n$ ...", "求 ...", "A block slides ...", "Prove that ..."],
            final_answer=[["$\\frac{1}{2}$"], ["$3$", "$5$"], ["$2$"], ["$4$"], None],
            image_1=[None, None, None, "<img>", None],
            modality=["Text-only", "Text-only", "Text-only", "Multi-modal", "Text-only"],
            subject=["Math", "Math", "Math", "Physics", "Math"],
            language=["English", "English", "Chinese", "English", "English"],
            **base,
        )
    )


def test_olympiadbench_parquet_keeps_text_only_english_maths(tmp_path):
    src = tmp_path / "olympiad.parquet"
    olympiad_frame().to_parquet(src)  # list columns come back as NumPy arrays
    df = load_benchmark("olympiadbench", str(src))
    assert df["question_id"].tolist() == ["olympiadbench/1606", "olympiadbench/1607"]
    assert df["answer"].tolist() == ["\\frac{1}{2}", "3, 5"]
    assert check_math(df["answer"][1], "The answers are \\boxed{5, 3}")
    assert not check_math(df["answer"][1], "\\boxed{3}")


def test_olympiadbench_final_answer_as_string(tmp_path):
    src = write_jsonl(
        tmp_path / "olympiad.jsonl",
        [dict(id=1, question="Q", final_answer='["$7$"]', language="English", modality="Text-only")],
    )
    assert load_benchmark("olympiad", str(src))["answer"].tolist() == ["7"]


# ------------------------------------------------------------------------------------------- errors


def test_missing_answer_names_file_row_and_column(tmp_path):
    rows = [dict(id=i, problem=f"P{i}", answer=str(i)) for i in range(5)]
    rows[3]["answer"] = ""
    src = write_jsonl(tmp_path / "aime24.jsonl", rows)
    with pytest.raises(InputError) as e:
        load_benchmark("aime24", str(src))
    msg = str(e.value)
    assert "aime24.jsonl: row 3: missing or empty column 'answer'" in msg
    assert "(has: id, problem, answer)" in msg
    del rows[3]["answer"]  # absent key in one JSONL record: same message
    with pytest.raises(InputError, match=r"aime24\.jsonl: row 3: missing or empty column 'answer'"):
        load_benchmark("aime24", str(write_jsonl(src, rows)))


def test_empty_question_names_the_row(tmp_path):
    src = tmp_path / "math500.parquet"
    pd.DataFrame(dict(problem=["ok", "   "], answer=["1", "2"], unique_id=["a", "b"])).to_parquet(src)
    with pytest.raises(InputError, match=r"math500\.parquet: row 1: missing or empty column 'problem'"):
        load_benchmark("math500", str(src))


def test_gpqa_missing_incorrect_answer_value(tmp_path):
    src = tmp_path / "gpqa.csv"
    rows = gpqa_rows(3)
    rows.loc[2, "Incorrect Answer 2"] = ""
    rows.to_csv(src, index=False)
    with pytest.raises(InputError, match=r"gpqa\.csv: row 2: missing or empty column 'Incorrect Answer 2'"):
        load_benchmark("gpqa_diamond", str(src))


def test_wrong_columns_name_the_missing_column(tmp_path):
    src = write_jsonl(tmp_path / "amc23.jsonl", [dict(prompt="Q", answer="1")])
    with pytest.raises(InputError) as e:
        load_benchmark("amc23", str(src))
    assert "amc23.jsonl: missing column 'problem' or 'question' (has: prompt, answer)" in str(e.value)
    src = tmp_path / "gpqa.csv"
    gpqa_rows(2).drop(columns=["Incorrect Answer 3"]).to_csv(src, index=False)
    with pytest.raises(InputError, match=r"gpqa\.csv: missing column 'incorrect answer 3'"):
        load_benchmark("gpqa_diamond", str(src))


def test_unreadable_and_absent_files(tmp_path):
    with pytest.raises(InputError, match="nope.jsonl: file not found"):
        load_benchmark("aime25", str(tmp_path / "nope.jsonl"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "a", "answer": "1"}\n{"problem": \n')
    with pytest.raises(InputError, match=r"bad\.jsonl: line 2: not valid JSON"):
        load_benchmark("aime25", str(bad))
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"not parquet")
    with pytest.raises(InputError, match=r"corrupt\.parquet: not a readable Parquet file"):
        load_benchmark("math500", str(corrupt))


def test_duplicate_ids_and_no_kept_rows(tmp_path):
    src = write_jsonl(
        tmp_path / "aime25.jsonl", [dict(id=1, problem="a", answer="1"), dict(id=1, problem="b", answer="2")]
    )
    with pytest.raises(InputError, match=r"row 1: duplicate id '1' \(also row 0\)"):
        load_benchmark("aime25", str(src))
    src = write_jsonl(tmp_path / "olymp.jsonl", [dict(id=1, question="求", final_answer=["$1$"], language="Chinese")])
    with pytest.raises(InputError, match="no text-only English maths rows"):
        load_benchmark("olympiadbench", str(src))


# ---------------------------------------------------------------------------------- hub and registry


def test_hub_source_uses_default_id_config_and_split(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(path, name=None, **kwargs):
        calls.append((path, name))
        if path == "Idavidrein/gpqa":
            return datasets.DatasetDict({"train": datasets.Dataset.from_pandas(gpqa_rows(2))})
        return datasets.DatasetDict(
            {
                "train": datasets.Dataset.from_dict(dict(problem=["wrong split"], answer=["0"])),
                "test": datasets.Dataset.from_dict(dict(problem=["P"], answer=["70"], id=["0"])),
            }
        )

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    df = load_benchmark("aime25")
    assert calls[-1] == ("math-ai/aime25", None)
    assert df["question"].tolist() == ["P"] and df["answer"].tolist() == ["70"]  # the spec's "test" split
    g = load_benchmark("gpqa_diamond")
    assert calls[-1] == ("Idavidrein/gpqa", "gpqa_diamond")
    assert len(g) == 2
    load_benchmark("aime25", "someone/aime25_copy:cfg")
    assert calls[-1] == ("someone/aime25_copy", "cfg")


def test_hub_failure_is_an_input_error(monkeypatch):
    import datasets

    def offline(*a, **k):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(InputError, match="math-ai/amc23: cannot load from the hub"):
        load_benchmark("amc23")


def test_registry_settings_are_the_papers_protocol():
    math = {"math500", "aime24", "aime25", "amc23", "olympiadbench"}
    assert set(BENCHMARKS) == math | {"gpqa_diamond", "mmlu_pro", "livecodebench", "humaneval"}
    for spec in BENCHMARKS.values():
        assert spec.temperature == 0.7 and spec.top_p == 1.0 and spec.max_new_tokens == 38912
    verifiers = {name: spec.verifier for name, spec in BENCHMARKS.items()}
    assert verifiers == {**dict.fromkeys(math, "math"), "gpqa_diamond": "choice", "mmlu_pro": "choice10",
                         "livecodebench": "code", "humaneval": "code"}  # fmt: skip
    n = {name: spec.n_samples for name, spec in BENCHMARKS.items()}
    assert n == {"aime24": 32, "aime25": 32, "amc23": 32, "gpqa_diamond": 8, "math500": 2, "olympiadbench": 2,
                 "mmlu_pro": 1, "livecodebench": 8, "humaneval": 8}  # fmt: skip
    assert (get_spec("livecodebench").timeout_s, get_spec("humaneval").timeout_s) == (6.0, 3.0)
    with pytest.raises(ValueError, match="unknown benchmark"):
        get_spec("mmlu")


def test_benchmark_settings_take_a_source_or_a_mapping():
    assert benchmark_settings("aime24", None) == (None, get_spec("aime24"))
    assert benchmark_settings("AIME2024", "a.jsonl") == ("a.jsonl", get_spec("aime24"))
    source, spec = benchmark_settings("aime24", {"source": "a.jsonl", "n_samples": 4, "max_new_tokens": 64})
    assert source == "a.jsonl" and (spec.n_samples, spec.temperature, spec.max_new_tokens) == (4, 0.7, 64)
    source, spec = benchmark_settings("math500", {"temperature": 1.0, "n_samples": None})
    assert source is None and (spec.n_samples, spec.temperature, spec.max_new_tokens) == (2, 1.0, 38912)
    with pytest.raises(InputError, match=r"evaluate.benchmarks.amc23: unknown key\(s\) \['top_p'\]"):
        benchmark_settings("amc23", {"top_p": 0.9})


def test_params_schema_accepts_a_benchmark_mapping_and_rejects_unknown_keys():
    import copy

    import yaml

    from conftest import REPO
    from varreason.params import ParamsError, validate_params

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    good = copy.deepcopy(params)
    good["evaluate"]["benchmarks"] = {"math500": None, "aime24": "x.jsonl", "amc23": {"n_samples": 4}}
    validate_params(good)
    bad = copy.deepcopy(params)
    bad["evaluate"]["benchmarks"] = {"amc23": {"n_sample": 4}}
    with pytest.raises(ParamsError, match="evaluate.benchmarks.amc23"):
        validate_params(bad)


def test_evaluate_benchmark_samples_with_the_protocol_and_stops_at_the_solution_tag(tmp_path, monkeypatch):
    """The requests evaluate-benchmark sends: n, T and the token limit from the protocol (or the
    params mapping), stopped at <|end_of_solution|> in the reasoning format; no model runs."""
    import yaml

    from conftest import REPO, build_bpe_tokenizer
    from varreason import chunks
    from varreason.generation import Sample
    from varreason.stages import evaluate as ev

    tok = build_bpe_tokenizer()
    requests = []

    def fake_generate(model_dir, request, **kw):
        requests.append(request)
        ids = tok("\n\n<|end_of_thought|>\n\n<|begin_of_solution|>\n\n\\boxed{3}\n\n<|end_of_solution|>").input_ids
        return [
            Sample(request.prompt_offset + p, j, seed=0, token_ids=ids, logps=[0.0] * len(ids), finish_reason="stop")
            for p in range(len(request.prompts))
            for j in range(request.num_samples)
        ]

    monkeypatch.setattr(ev, "load_tokenizer", lambda path: tok)
    monkeypatch.setattr(chunks, "generate", fake_generate)
    src = write_jsonl(tmp_path / "aime24.jsonl", [{"id": 0, "problem": "1 + 2?", "answer": "3"}])
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["task"].update(source="x.jsonl", verifier="math", templates={"format": "reasoning"})
    params["evaluate"]["benchmarks"] = {"aime24": str(src)}
    m = ev.evaluate_benchmark(params, "model", "aime24", "sft", tmp_path / "e.parquet", tmp_path / "m.json")
    greedy, sampled = requests
    assert (greedy.num_samples, greedy.temperature, greedy.max_new_tokens) == (1, 0.0, 38912)
    assert (sampled.num_samples, sampled.temperature, sampled.max_new_tokens) == (32, 0.7, 38912)
    assert list(greedy.stop_strings) == list(sampled.stop_strings) == ["<|end_of_solution|>"]
    assert m["avg@32"] == 1.0 and m["greedy_acc"] == 1.0

    requests.clear()
    params["evaluate"]["benchmarks"] = {"aime24": {"source": str(src), "n_samples": 4, "max_new_tokens": 64}}
    m = ev.evaluate_benchmark(params, "model", "aime24", "sft", tmp_path / "e.parquet", tmp_path / "m.json")
    assert [(r.num_samples, r.max_new_tokens) for r in requests] == [(1, 64), (4, 64)] and "avg@4" in m
    assert benchmarks.ALIASES["gpqa"] == "gpqa_diamond"

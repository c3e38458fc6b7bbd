"""Dataset adapters on small files in each public layout, and their errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import REPO
from varreason import columns as C
from varreason.data import adapt, last_boxed, load_task, split_reasoning
from varreason.io import InputError, read_parquet
from varreason.params import load_params
from varreason.stages.prepare import prepare


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _stratos_row(q, thought, solution, **extra):
    reply = (
        f"<|begin_of_thought|>\n\n{thought}\n\n<|end_of_thought|>\n\n"
        f"<|begin_of_solution|>\n\n{solution}\n\n<|end_of_solution|>"
    )
    return {
        "system": "Your role as an assistant ...",
        "conversations": [{"from": "user", "value": q}, {"from": "assistant", "value": reply}],
        **extra,
    }


def test_stratos_layout(tmp_path):
    src = _jsonl(
        tmp_path / "stratos.jsonl",
        [
            _stratos_row("What is 2+3?", "2 plus 3 is 5.", "So the answer is \\boxed{5}."),
            _stratos_row("Half of 1?", "It is one half.", "$\\boxed{\\frac{1}{2}}$"),
        ],
    )
    df = load_task(src)
    assert list(df.columns) == list(C.PREPARED)
    assert df["question"].tolist() == ["What is 2+3?", "Half of 1?"]
    assert df["trace"].tolist() == ["2 plus 3 is 5.", "It is one half."]
    assert df["answer"][0] == "So the answer is \\boxed{5}."
    assert df["gold"].tolist() == ["5", "\\frac{1}{2}"]  # the last boxed value of the solution


def test_openthoughts_messages_with_role_content_and_a_ground_truth(tmp_path):
    reply = "<|begin_of_thought|>t<|end_of_thought|><|begin_of_solution|>s \\boxed{3}<|end_of_solution|>"
    rows = [{"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": reply}], "answer": "3.0"}]
    df = load_task(_jsonl(tmp_path / "ot.jsonl", rows))
    assert df.loc[0, ["question", "trace", "answer", "gold"]].tolist() == ["Q", "t", "s \\boxed{3}", "3.0"]


def test_stratos_row_without_a_complete_solution_section_names_row_and_column(tmp_path):
    bad = _stratos_row("Q2", "t", "s")
    bad["conversations"][1]["value"] = "<|begin_of_thought|>t<|end_of_thought|><|begin_of_solution|>cut off"
    src = _jsonl(tmp_path / "s.jsonl", [_stratos_row("Q", "t", "\\boxed{1}"), bad])
    with pytest.raises(InputError, match=r"s\.jsonl: row 1: column 'conversations'.*<\|end_of_solution\|>"):
        load_task(src)


def test_thought_solution_layout_from_parquet(tmp_path):
    path = tmp_path / "ts.parquet"
    pd.DataFrame(
        {
            "problem": ["P1", "P2"],
            "thought": ["T1", "T2"],
            "solution": ["\\boxed{1}", "\\boxed{2}"],
            "answer": ["1", None],
        }
    ).to_parquet(path)
    df = load_task(str(path))
    assert df["question"].tolist() == ["P1", "P2"] and df["trace"].tolist() == ["T1", "T2"]
    assert df["gold"].tolist() == ["1", "2"]  # ground truth where present, else the boxed value


def test_thought_solution_empty_thought_names_the_row(tmp_path):
    path = tmp_path / "ts.parquet"
    pd.DataFrame(
        {"question": ["P1", "P2", "P3"], "thought": ["T1", "T2", "  "], "solution": ["a", "b", "c"]}
    ).to_parquet(path)
    with pytest.raises(InputError, match=r"ts\.parquet: row 2: missing or empty column 'thought'"):
        load_task(str(path))


def test_gsm8k_layout(tmp_path):
    rows = [
        {"question": "Tom has 3 apples and buys 1,200 more.", "answer": "3 + 1200 = 1203\n#### 1,203"},
        {"question": "2+2?", "answer": "2+2=4 #### 4"},
    ]
    df = load_task(_jsonl(tmp_path / "gsm8k.jsonl", rows), layout="qa")
    assert df["trace"].tolist() == ["3 + 1200 = 1203", "2+2=4"]
    assert df["gold"].tolist() == ["1203", "4"]
    assert df["answer"][0] == "The answer is $\\boxed{1203}$."


def test_a_csv_source_reads_like_jsonl(tmp_path):
    rows = [{"question": "2+2?", "answer": "2+2=4 #### 4"}, {"question": "3+3?", "answer": "3+3=6 #### 6"}]
    pd.DataFrame(rows).to_csv(tmp_path / "gsm8k.csv", index=False)
    from_csv = load_task(str(tmp_path / "gsm8k.csv"), layout="qa")
    from_jsonl = load_task(_jsonl(tmp_path / "gsm8k.jsonl", rows), layout="qa")
    assert from_csv.equals(from_jsonl) and from_csv["gold"].tolist() == ["4", "6"]
    with pytest.raises(InputError, match=r"task\.source: .*missing\.csv: file not found"):
        load_task(str(tmp_path / "missing.csv"))


def test_math_layout_boxed_answer_and_errors(tmp_path):
    path = tmp_path / "math.parquet"
    pd.DataFrame({"problem": ["P"], "solution": ["so $x=\\boxed{\\frac{\\sqrt{2}}{2}}$ done"]}).to_parquet(path)
    df = load_task(str(path))
    assert df["gold"][0] == "\\frac{\\sqrt{2}}{2}" and df["trace"][0].startswith("so $x")
    pd.DataFrame({"problem": ["P", "Q"], "solution": ["\\boxed{1}", "no boxed answer here"]}).to_parquet(path)
    with pytest.raises(InputError, match=r"math\.parquet: row 1: no 'answer' and no \\boxed"):
        load_task(str(path))


def test_native_layout_and_missing_columns(tmp_path):
    src = _jsonl(tmp_path / "n.jsonl", [{"question": "Q", "trace": "T", "answer": "A"}])
    assert load_task(src).loc[0, ["question", "trace", "answer", "gold"]].tolist() == ["Q", "T", "A", "A"]
    with pytest.raises(InputError, match=r"n\.jsonl: missing column\(s\) \['trace'\]"):
        adapt(pd.DataFrame({"question": ["Q"], "answer": ["A"]}), "native", "n.jsonl")
    with pytest.raises(InputError, match="cannot tell the dataset layout"):
        load_task(_jsonl(tmp_path / "x.jsonl", [{"prompt": "Q", "completion": "A"}]))
    with pytest.raises(InputError, match="file not found"):
        load_task(str(tmp_path / "missing.jsonl"))


def test_not_json_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"question": "Q", "trace": "T", "answer": "A"}\n{"question": \n')
    with pytest.raises(InputError, match=r"task\.source: .*broken\.jsonl: line 2: not valid JSON"):
        load_task(str(path))


@pytest.mark.parametrize(
    ("text", "boxed"),
    [
        ("\\boxed{5}", "5"),
        ("a \\boxed{1} then \\boxed{\\frac{a}{b}}", "\\frac{a}{b}"),
        ("none", None),
        ("\\boxed{x", None),
    ],
)
def test_last_boxed(text, boxed):
    assert last_boxed(text) == boxed


def test_split_reasoning_needs_both_sections():
    assert split_reasoning("<|begin_of_thought|>a<|end_of_thought|>") is None
    assert split_reasoning("<|begin_of_thought|> a <|end_of_thought|><|begin_of_solution|> b <|end_of_solution|>") == (
        "a",
        "b",
    )


def test_prepare_stage_on_a_stratos_file_with_a_split_column(tmp_path):
    rows = [
        _stratos_row(f"Q{i}", f"t{i}", f"\\boxed{{{i}}}", split="test" if i % 4 == 0 else "train") for i in range(12)
    ]
    params = load_params(
        REPO / "params.yaml",
        [f"task.source={_jsonl(tmp_path / 'd.jsonl', rows)}", "task.n_train=5", "task.templates.format=reasoning"],
    )
    n_train, n_test = prepare(params, tmp_path / "train.parquet", tmp_path / "test.parquet")
    assert (n_train, n_test) == (5, 3)
    test = read_parquet(tmp_path / "test.parquet", C.PREPARED)
    assert test["question"].tolist() == ["Q0", "Q4", "Q8"] and test["gold"].tolist() == ["0", "4", "8"]


def test_a_hub_id_goes_through_datasets_with_its_split_and_config(monkeypatch):
    """No hub is reachable here: the call is checked, and the rows it returns are adapted."""
    import datasets

    calls = []

    def fake_load_dataset(path, name=None, split=None, **kw):
        calls.append((path, name, split))
        return datasets.Dataset.from_list([_stratos_row("Q", "t", "\\boxed{2}")])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    df = load_task("bespokelabs/Bespoke-Stratos-17k", "auto", "train", None)
    assert calls == [("bespokelabs/Bespoke-Stratos-17k", None, "train")]
    assert df.loc[0, ["question", "gold"]].tolist() == ["Q", "2"]


def _champ_file(path, problems):
    path.write_text(json.dumps({"problems": problems, "concepts": {}, "hints": {}}))
    return str(path)


def _champ_problem(pid, answer, steps=("First step.", "Second step.")):
    return {
        "identifier": pid,
        "_text": f"Question {pid}?",
        "category": "Number-Theory",
        "solution": {"steps": [{"_text": s, "ch_idxs": []} for s in steps]},
        "_answer": answer,
        "conversations": [{"role": "user", "text": "..."}],  # CHAMP rows also carry model conversations
    }


def test_champ_layout_maps_question_steps_and_answer(tmp_path):
    src = _champ_file(
        tmp_path / "v0.json",
        {
            "P_Number-Theory_1": _champ_problem("P_Number-Theory_1", "239"),
            "P_Combinatorics_2": _champ_problem("P_Combinatorics_2", "C(10, 5), or equivalently 252"),
            "P_Algebra_3": _champ_problem("P_Algebra_3", "5/14, or approximately 35.7%"),
        },
    )
    df = load_task(src)  # auto detects CHAMP before the conversations column
    assert df["question_id"].tolist() == ["P_Number-Theory_1", "P_Combinatorics_2", "P_Algebra_3"]
    assert df["trace"][0] == "First step.\nSecond step."
    assert df["gold"].tolist() == ["239", "252", "5/14"]
    assert df["answer"][1] == "The answer is $\\boxed{252}$."


def test_champ_row_without_steps_names_the_row(tmp_path):
    src = _champ_file(
        tmp_path / "v0.json",
        {"a": _champ_problem("a", "1"), "b": _champ_problem("b", "2", steps=())},
    )
    with pytest.raises(InputError, match=r"v0.json: row 1: column 'solution' needs a non-empty 'steps'"):
        load_task(src, layout="champ")


def test_the_real_champ_release_splits_into_train_and_held_out_test(tmp_path, champ_json):
    params = load_params(REPO / "params.yaml")
    params["task"].update(source=str(champ_json), layout="champ", n_train=1000, n_test=20)
    n_train, n_test = prepare(params, tmp_path / "train.parquet", tmp_path / "test.parquet")
    assert (n_train, n_test) == (250, 20)
    train, test = read_parquet(tmp_path / "train.parquet"), read_parquet(tmp_path / "test.parquet")
    assert not set(train["question_id"]) & set(test["question_id"])
    assert train["gold"].str.len().gt(0).all() and train["trace"].str.len().gt(0).all()


@pytest.mark.parametrize(
    "answer, gold",
    [
        ("239", "239"),
        ("C(10, 5), or equivalently 252", "252"),
        ("5/14, or approximately 35.7%", "5/14"),
        ("100 (i.e., all values)", "100"),
        ("0 (none of the values)", "0"),
        ("-3 is the only possible value", "-3"),
        ("x=2, y=1", "x=2, y=1"),  # stays as written
    ],
)
def test_champ_gold_keeps_one_expression(answer, gold):
    from varreason.data import champ_gold

    assert champ_gold(answer) == gold

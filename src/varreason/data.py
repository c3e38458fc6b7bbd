"""Dataset adapters: real reasoning data into the prepared layout every stage reads.

Prepared rows: ``question_id, question, trace, answer, gold``. ``trace`` is the reference thought,
``answer`` the reference answer y' that follows the trace delimiter (the solution section in the
reasoning format; the text the GML estimator scores), ``gold`` the short answer the verifier
compares with (the ground truth where the source has one, else the last ``\\boxed{}`` of the
answer, else the answer itself).

Layouts (``task.layout``; ``auto`` detects from the columns):
- ``stratos``: Bespoke-Stratos / OpenThoughts chat layout: ``conversations`` (a list of
  ``{from|role, value|content}`` turns: user question, assistant ``<|begin_of_thought|>...
  <|end_of_thought|> <|begin_of_solution|>...<|end_of_solution|>``), optional ``system``.
- ``thought_solution``: one column each for question (``question``/``problem``), ``thought`` and
  ``solution``, an optional ground truth (``answer``/``ground_truth``/``ground_truth_solution``).
- ``qa``: plain question/answer math sets: GSM8K (``question``, ``answer`` ending ``#### 42``: the
  text before is the trace) or MATH (``problem``, ``solution`` with a boxed answer: the solution is
  the trace, the boxed value the answer; an ``answer`` column wins when present).
- ``native``: already ``question``, ``trace``, ``answer`` (what ``varreason prepare`` writes).
- ``champ``: CHAMP's competition problems (champ-dataset's ``v0.json``, ``{"problems": {id: record}}``):
  ``_text`` is the question, the ``_text`` of each of ``solution``'s ``steps`` one line of the trace,
  ``_answer`` the gold (``champ_gold``: of "C(10, 5), or equivalently 252" the part after "or
  equivalently", of "5/14, or approximately 35.7%" the part before ", or", "100 (i.e., all
  values)" and "3 is the only possible value" as the number), ``identifier`` the question id; the answer
  y' is "The answer is $\boxed{gold}$.".
Sources: a local ``.parquet``/``.jsonl``/``.json``/``.csv`` file or a hub dataset id (``datasets``). Every
bad row is an ``InputError`` naming the source, the row (0-based) and the column.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from varreason import columns as C
from varreason.io import FILE_SUFFIXES, InputError, read_table

LAYOUTS = ("auto", "stratos", "thought_solution", "qa", "native", "champ")
THOUGHT_TAGS = ("<|begin_of_thought|>", "<|end_of_thought|>")
SOLUTION_TAGS = ("<|begin_of_solution|>", "<|end_of_solution|>")


def load_source(source: str, split: str = "train", config: str | None = None) -> pd.DataFrame:
    """A local Parquet/JSONL/JSON/CSV file (``io.read_table``), or a hub dataset id (``datasets``)."""
    if Path(source).suffix.lower() in FILE_SUFFIXES:
        try:
            return read_table(source)
        except InputError as e:
            raise InputError(f"task.source: {e}") from e
    import datasets

    return datasets.load_dataset(source, config, split=split).to_pandas()


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), braces balanced; None if none."""
    starts = [m.end() for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text)]
    if not starts:
        return None
    depth, i = 1, starts[-1]
    while i < len(text):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[starts[-1] : i].strip()
        i += 1
    return None


def _between(text: str, tags: tuple[str, str]) -> str | None:
    """The text between a pair of complete tags, or None when either tag is missing."""
    a, b = text.find(tags[0]), text.find(tags[1])
    if a < 0 or b < 0 or b < a:
        return None
    return text[a + len(tags[0]) : b].strip()


def split_reasoning(text: str) -> tuple[str, str] | None:
    """(thought, solution) of an assistant turn in the reasoning format, or None if a tag is missing."""
    thought, solution = _between(text, THOUGHT_TAGS), _between(text, SOLUTION_TAGS)
    if thought is None or solution is None:
        return None
    return thought, solution


def _pick(df: pd.DataFrame, names: tuple[str, ...]) -> str | None:
    lower = {c.lower(): c for c in df.columns}
    return next((lower[n] for n in names if n in lower), None)


def detect_layout(df: pd.DataFrame) -> str:
    cols = {c.lower() for c in df.columns}
    if {"_text", "_answer", "solution"} <= cols:  # before stratos: CHAMP rows also hold model conversations
        return "champ"
    if "conversations" in cols or "messages" in cols:
        return "stratos"
    if "thought" in cols and "solution" in cols:
        return "thought_solution"
    if "trace" in cols and "answer" in cols:
        return "native"
    if cols & {"question", "problem"} and cols & {"answer", "solution"}:
        return "qa"
    raise InputError(
        f"cannot tell the dataset layout from its columns {sorted(df.columns)}; expected conversations "
        "(stratos), question+thought+solution, question/problem+answer/solution (qa), or question+trace+answer"
    )


def _text(source: str, i: int, column: str, value) -> str:
    if value is None or (isinstance(value, float) and value != value) or str(value).strip() == "":
        raise InputError(f"{source}: row {i}: missing or empty column {column!r}")
    return str(value)


def _turns(value) -> list[tuple[str, str]]:
    return [
        (str(t.get("from", t.get("role", ""))).lower(), str(t.get("value", t.get("content", ""))))
        for t in list(value)
        if isinstance(t, dict)
    ]


def _stratos(df: pd.DataFrame, source: str) -> list[dict]:
    col = _pick(df, ("conversations", "messages"))
    gt = _pick(df, ("answer", "ground_truth", "ground_truth_solution", "gold"))
    rows = []
    for i, conv in enumerate(df[col]):
        turns = _turns(conv) if conv is not None else []
        user = next((v for r, v in turns if r in ("user", "human")), None)
        reply = next((v for r, v in turns if r in ("assistant", "gpt")), None)
        question = _text(source, i, f"{col}[user]", user)
        parts = split_reasoning(_text(source, i, f"{col}[assistant]", reply))
        if parts is None:
            raise InputError(
                f"{source}: row {i}: column {col!r}: the assistant turn lacks complete "
                f"{THOUGHT_TAGS[0]}..{THOUGHT_TAGS[1]} and {SOLUTION_TAGS[0]}..{SOLUTION_TAGS[1]} sections"
            )
        rows.append(_row(i, question, *parts, df[gt][i] if gt else None))
    return rows


def _thought_solution(df: pd.DataFrame, source: str) -> list[dict]:
    q = _pick(df, ("question", "problem", "question_content"))
    if q is None:
        raise InputError(f"{source}: missing column 'question' (or 'problem'); has {list(df.columns)}")
    gt = _pick(df, ("answer", "ground_truth", "ground_truth_solution", "gold"))
    t, s = _pick(df, ("thought",)), _pick(df, ("solution",))
    return [
        _row(
            i,
            _text(source, i, q, df[q][i]),
            _text(source, i, t, df[t][i]),
            _text(source, i, s, df[s][i]),
            df[gt][i] if gt else None,
        )
        for i in range(len(df))
    ]


def _qa(df: pd.DataFrame, source: str) -> list[dict]:
    q = _pick(df, ("question", "problem"))
    a, s = _pick(df, ("answer",)), _pick(df, ("solution",))
    if q is None or (a is None and s is None):
        raise InputError(
            f"{source}: missing column 'question'/'problem' or 'answer'/'solution'; has {list(df.columns)}"
        )
    rows = []
    for i in range(len(df)):
        question = _text(source, i, q, df[q][i])
        if s is not None:  # MATH style: the worked solution is the trace
            solution = _text(source, i, s, df[s][i])
            gold = str(df[a][i]).strip() if a is not None and str(df[a][i]).strip() else last_boxed(solution)
            if not gold:
                raise InputError(f"{source}: row {i}: no 'answer' and no \\boxed{{}} answer in column {s!r}")
            rows.append(_row(i, question, solution, f"The answer is $\\boxed{{{gold}}}$.", gold))
            continue
        answer = _text(source, i, a, df[a][i])
        if "####" in answer:  # GSM8K: rationale #### final answer
            rationale, final = answer.rsplit("####", 1)
            final = final.strip().replace(",", "")
            if not final:
                raise InputError(f"{source}: row {i}: column {a!r}: nothing after '####'")
            rows.append(_row(i, question, rationale.strip(), f"The answer is $\\boxed{{{final}}}$.", final))
        else:
            rows.append(_row(i, question, "", answer.strip(), answer.strip()))
    return rows


def _native(df: pd.DataFrame, source: str) -> list[dict]:
    missing = [c for c in ("question", "trace", "answer") if c not in df.columns]
    if missing:
        raise InputError(f"{source}: missing column(s) {missing}; has {list(df.columns)}")
    gold = "gold" if "gold" in df.columns else None
    rows = []
    for i in range(len(df)):
        trace = df["trace"][i]
        rows.append(
            {
                "question_id": str(df["question_id"][i]) if "question_id" in df.columns else f"q-{i:06d}",
                "question": _text(source, i, "question", df["question"][i]),
                "trace": "" if trace is None or trace != trace else str(trace),
                "answer": _text(source, i, "answer", df["answer"][i]),
                "gold": str(df[gold][i]) if gold and df[gold][i] is not None else str(df["answer"][i]).strip(),
            }
        )
    return rows


def champ_gold(answer: str) -> str:
    """CHAMP's final answer as one expression where it can be: "C(10, 5), or equivalently 252" -> "252",
    "100 (i.e., all values)" -> "100", "3 is the only possible value" -> "3". The rest (about a third:
    "No integer solutions", "x=2, y=1") stay as written."""
    if ", or equivalently " in answer:
        answer = answer.rsplit(", or equivalently ", 1)[1]
    answer = answer.split(", or ", 1)[0]
    answer = re.sub(r"\s*\((?:i\.e\.|none|that is)[^()]*\)\s*$", "", answer.strip())
    return re.sub(r"\s+is the only possible value$", "", answer).strip()


def _champ(df: pd.DataFrame, source: str) -> list[dict]:
    for col in ("_text", "_answer", "solution"):
        if col not in df.columns:
            raise InputError(f"{source}: missing column {col!r} (CHAMP layout); has {list(df.columns)}")
    rows = []
    for i in range(len(df)):
        question = _text(source, i, "_text", df["_text"][i])
        solution = df["solution"][i]
        steps = solution.get("steps") if isinstance(solution, dict) else None
        if not steps or not all(isinstance(s, dict) and str(s.get("_text", "")).strip() for s in steps):
            raise InputError(f"{source}: row {i}: column 'solution' needs a non-empty 'steps' list, each with '_text'")
        gold = champ_gold(_text(source, i, "_answer", df["_answer"][i]))
        row = _row(
            i, question, "\n".join(str(s["_text"]).strip() for s in steps), f"The answer is $\\boxed{{{gold}}}$.", gold
        )
        if "identifier" in df.columns and df["identifier"][i]:
            row["question_id"] = str(df["identifier"][i])
        rows.append(row)
    return rows


def _row(i: int, question: str, trace: str, answer: str, ground_truth) -> dict:
    gt = None if ground_truth is None or ground_truth != ground_truth else str(ground_truth).strip()
    gold = gt or last_boxed(answer) or answer.strip()
    return {"question_id": f"q-{i:06d}", "question": question, "trace": trace, "answer": answer, "gold": gold}


def adapt(df: pd.DataFrame, layout: str, source: str) -> pd.DataFrame:
    """Rows of ``df`` in the prepared layout (see the module docstring)."""
    if layout not in LAYOUTS:
        raise InputError(f"task.layout must be one of {list(LAYOUTS)}, got {layout!r}")
    df = df.reset_index(drop=True)
    if layout == "auto":
        layout = detect_layout(df)
    adapters = {
        "stratos": _stratos,
        "thought_solution": _thought_solution,
        "qa": _qa,
        "native": _native,
        "champ": _champ,
    }
    rows = adapters[layout](df, source)
    out = pd.DataFrame(rows, columns=list(C.PREPARED))
    if "split" in df.columns:
        out["split"] = df["split"].astype(str).to_numpy()
    return out


def load_task(source: str, layout: str = "auto", split: str = "train", config: str | None = None) -> pd.DataFrame:
    """``load_source`` then ``adapt``: a task source in the prepared layout."""
    return adapt(load_source(source, split, config), layout, source)

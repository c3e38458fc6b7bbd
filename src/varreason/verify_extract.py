"""Answer extraction for the math verifier: from model output (or a gold) to one LaTeX string.

``varreason.verify`` parses what these functions return as one whole LaTeX expression (wrapped in
``$...$``), so an answer is either read entirely or not at all: no parse can stop after a prefix
such as the ``2`` of ``2\\sqrt{3}``. The rules are stated in ``varreason.verify``'s docstring; this
module holds them as code (plain string work, no sympy):

- ``prediction_answer``: the last ``\\boxed{}`` (math-verify's rule for several boxes), else the first
  candidate after the last "answer is" / "answer:", else the last candidate in the text, where a
  candidate is a ``$...$`` / ``$$...$$`` / ``\\(...\\)`` / ``\\[...\\]`` formula or a bare "math run"
  (see ``_runs``); formulas joined by "and" / "or" / "," form one candidate.
- ``gold_answer``: the gold's box content or its whole text.
- ``strip_units``: trailing ``\\text{...}`` groups and unit words are removed (our rule replaces
  math-verify's unit list, which also drops variables: it reads ``2ab`` as 2 and ``3c`` as 3).
"""

from __future__ import annotations

import re

UNICODE = {"−": "-", "×": "\\times ", "÷": "\\div ", "·": "\\cdot ", "π": "\\pi ", "√": "\\sqrt ",
           "∞": "\\infty ", "≤": "\\le ", "≥": "\\ge ", "≠": "\\neq ", "°": "^\\circ "}  # fmt: skip
_UNICODE = re.compile("|".join(UNICODE))

# Unit words (plural "s" allowed) stripped from the end of an answer: glued to a digit, brace or
# bracket ("5cm") or after a space ("4\pi sq units"); the one-letter m, s, g, L only after a number
# and a space ("5 m"), so "2m" stays 2m.
UNIT_WORDS = (
    "mm|cm|km|kg|mg|lb|lbs|oz|ft|feet|foot|inch|inches|yd|yard|mile|meter|metre|centimeter|"
    "centimetre|millimeter|kilometer|kilometre|gram|kilogram|second|sec|minute|min|hour|hr|day|week|"
    "month|year|degree|deg|unit|dollar|cent|liter|litre|ml|mph|gallon|square|sq|cubic|cu"
)
ONE_LETTER_UNITS = "msgL"
_TEXT_GROUP = (  # words, or a one-letter unit: \mathrm{i} and \text{e} are not units
    r"\\(?:text|textrm|textnormal|textit|textbf|mathrm|mbox)\s*\{\s*(?:[A-Za-z][A-Za-z\s./]*[A-Za-z]|[msgL])\s*\.?\s*\}"
)
_SUPERSCRIPT = r"(?:\s*\^\s*(?:\{\s*[23]\s*\}|[23]))?"
_GAP = r"(?:\s|~|\\[,;:!]|\\q?quad\b)*"  # spaces and LaTeX spacing before a unit
_TRAILING_UNIT = re.compile(
    rf"(?:{_GAP}{_TEXT_GROUP}|(?<=[\d}}\)\]])\s*(?:{UNIT_WORDS})(?:e?s)?\b\.?|\s+(?:{UNIT_WORDS})(?:e?s)?\b\.?"
    rf"|(?<=\d)\s+[{ONE_LETTER_UNITS}]\b){_SUPERSCRIPT}\s*$"
)
_OPEN_END = re.compile(r"(?:[-+*/^_=(\[{,]|\\[,;:!]?)\s*$")


def strip_units(latex: str) -> str:
    """Remove trailing units (``\\text{...}``, ``\\mathrm{...}``, unit words, a ^2/^3 after them)."""
    text = latex.strip()
    for _ in range(3):
        m = _TRAILING_UNIT.search(text)
        if not m:
            break
        rest = text[: m.start()].rstrip()
        if not rest or _OPEN_END.search(rest):
            break
        text = rest
    return text


def normalize(text: str) -> str:
    """Unicode math signs to LaTeX; ``1\\,000`` and ``1 000`` to ``1000``."""
    text = _UNICODE.sub(lambda m: UNICODE[m.group()], text)
    text = re.sub(r"(?<=\d)\\,(?=\d{3}(?!\d))", "", text)
    return re.sub(r"(?<![\d.])\d{1,3}(?: \d{3})+(?![\d.])", lambda m: m.group().replace(" ", ""), text)


# ------------------------------------------------------------------------------------------ boxes


def _boxes(text: str) -> str | None:
    """math-verify's box rule (``extract_boxed_content(mode="last")``): the last box, joined by commas
    with the boxes just before it when they are close (under 10 characters apart) or separated by
    "and" / "or" / "," within 70 characters. None without a box."""
    if "\\boxed" not in text and "\\fbox" not in text:
        return None
    from latex2sympy2_extended.math_normalization import extract_boxed_content

    return extract_boxed_content(text, mode="last")


# ----------------------------------------------------------------------------------- bare math runs

_FUNC_WORDS = frozenset("sin cos tan cot csc arcsin arccos arctan sinh cosh tanh log ln exp sqrt pi infty".split())
_INFIX_WORDS = {"times": "\\times", "plus": "+", "over": "/", "divided by": "/"}
_PREFIX_WORDS = {"minus": "-"}
_POSTFIX_WORDS = {"squared": "^2", "cubed": "^3"}
_TOKEN = re.compile(
    r"(?P<space>[ \t]+)|(?P<cmd>\\[A-Za-z]+\*?)|(?P<esc>\\[^A-Za-z\s])|(?P<num>\d+(?:\.\d+)?)"
    r"|(?P<word>(?i:divided\s+by)\b|[A-Za-z]+)|(?P<op>[-+*/^_=<>()\[\]|!,]|\.(?=\d))|(?P<open>\{)"
)
_MATH_OPS = set("+-*/^=<>()[]|!")


def _brace_pairs(text: str) -> dict[int, int]:
    """For each ``{`` that is closed, the index after its ``}`` (``\\{`` and ``\\}`` are not braces)."""
    pairs, stack, j = {}, [], 0
    while j < len(text):
        c = text[j]
        if c == "\\":
            j += 2
            continue
        if c == "{":
            stack.append(j)
        elif c == "}" and stack:
            pairs[stack.pop()] = j + 1
        j += 1
    return pairs


def _tokens(text: str) -> list[tuple[str, str, int, int]]:
    """(kind, text, start, end); characters outside any token become kind "break"."""
    out, i, pairs = [], 0, _brace_pairs(text)
    while i < len(text):
        m = _TOKEN.match(text, i)
        if m and m.lastgroup == "open":
            end = pairs.get(i)
            out.append(("brace", text[i:end], i, end) if end else ("break", "{", i, i + 1))
            i = end or i + 1
        elif m:
            out.append((m.lastgroup, m.group(), i, m.end()))
            i = m.end()
        else:
            out.append(("break", text[i], i, i + 1))
            i += 1
    return out


def _classify(toks: list[tuple[str, str, int, int]], text: str) -> list[str | None]:
    """The LaTeX each token contributes to a math run, or None where the token ends a run."""
    latex: list[str | None] = [t if k != "break" else None for k, t, *_ in toks]

    def neighbour(i: int, step: int) -> int | None:
        j = i + step
        while 0 <= j < len(toks) and toks[j][0] == "space":
            j += step
        return j if 0 <= j < len(toks) else None

    def is_math(j: int | None) -> bool:
        return j is not None and latex[j] is not None and toks[j][0] != "space"

    words = [i for i, t in enumerate(toks) if t[0] == "word"]
    for i in words:  # many-letter words: function names, glued letters, units after a value
        _, word, start, end = toks[i]
        low = re.sub(r"\s+", " ", word.lower())
        before, after = text[start - 1 : start], text[end : end + 1]
        prev = neighbour(i, -1)
        if low in ("infinity", "inf"):
            latex[i] = "\\infty"
        elif low in _FUNC_WORDS:  # "sqrt(2)" stays as is: math-verify rewrites it to \sqrt{2}
            latex[i] = low if low == "sqrt" and after == "(" else "\\" + low
        elif len(word) == 1 or low in _INFIX_WORDS or low in _PREFIX_WORDS or low in _POSTFIX_WORDS:
            continue  # decided below, once their neighbours are known
        elif before and (before.isdigit() or before in "})") or (after and (after.isdigit() or after in "({\\^_")):
            latex[i] = word  # glued to math: "2ab", "5cm", "xy^2" (units are stripped later)
        elif re.fullmatch(rf"(?:{UNIT_WORDS})(?:e?s)?", low) and prev is not None and toks[prev][0] in (
            "num", "brace", "cmd", "op"
        ):  # fmt: skip
            latex[i] = word
        else:
            latex[i] = None  # text
    for i in words:  # one letter: a variable, unless a text word follows ("a day", "I think")
        if len(toks[i][1]) == 1:
            nxt = neighbour(i, 1)
            text_next = nxt is not None and toks[nxt][0] == "word" and len(toks[nxt][1]) > 1 and latex[nxt] is None
            latex[i] = None if text_next else toks[i][1]
    for i in words:  # operator words and "and" / "or" between math tokens
        low = re.sub(r"\s+", " ", toks[i][1].lower())
        prev_ok, next_ok = is_math(neighbour(i, -1)), is_math(neighbour(i, 1))
        if low in _INFIX_WORDS:
            latex[i] = _INFIX_WORDS[low] if prev_ok and next_ok else None
        elif low in _PREFIX_WORDS:
            latex[i] = _PREFIX_WORDS[low] if next_ok else None
        elif low in _POSTFIX_WORDS:
            latex[i] = _POSTFIX_WORDS[low] if prev_ok else None
        elif low in ("and", "or"):
            latex[i] = "," if prev_ok and next_ok else None
    return latex


def _trim(run: str) -> str:
    """Strip spaces, markdown stars, stray punctuation and unbalanced outer brackets from a run."""
    prev = None
    while run != prev:
        prev = run
        run = run.strip().strip("*").lstrip(",=").rstrip(",=")
        if run.count("(") + run.count("[") < run.count(")") + run.count("]") and run[-1:] in ")]":
            run = run[:-1]
        if run.count("(") + run.count("[") > run.count(")") + run.count("]") and run[:1] in "([":
            run = run[1:]
    return run


def _runs(text: str, offset: int) -> list[tuple[int, int, str, bool]]:
    """Bare math runs in ``text``: maximal stretches of numbers, LaTeX commands and brace groups,
    operators, variables and the words above, with no line break or other text in between.
    Returns (start, end, latex, strong); a run is strong when it has a digit, a command or an operator
    with a letter (a lone "x" is only taken right after an answer phrase)."""
    toks = _tokens(text)
    latex = _classify(toks, text)
    runs, cur = [], []
    for tok, lx in zip([*toks, ("break", "", len(text), len(text))], [*latex, None], strict=True):
        if lx is not None:
            cur.append((tok, lx))
            continue
        if cur:
            body = _trim("".join(lx for _, lx in cur))
            if body and re.search(r"[\dA-Za-z\\]", body) and body[0] not in "^_/!":
                strong = bool(re.search(r"[\d\\]", body) or (_MATH_OPS & set(body)))
                runs.append((offset + cur[0][0][2], offset + cur[-1][0][3], body, strong))
        cur = []
    return runs


# ------------------------------------------------------------------------------------- candidates

_FORMULA = re.compile(
    r"(?<!\\)\$\$(?P<a>.+?)(?<!\\)\$\$|\\\[(?P<b>.+?)\\\]|(?<![\\\d])\$(?P<c>(?:\\\$|[^\n$])+?)(?<!\\)\$"
    r"|\\\((?P<d>.+?)\\\)",
    re.DOTALL,
)
_JOINER = re.compile(r"\s*(?:,\s*(?:and|or)?|and|or)\s*", re.IGNORECASE)
_ANCHOR = re.compile(r"\banswer\b[\s*_]*(?:is\b|:|=|(?:would|will|should|must)\s+be\b)[\s*_:]*", re.IGNORECASE)


def _candidates(text: str) -> list[tuple[int, int, str, bool]]:
    """Formulas (chains joined by and/or/, merged) and bare runs between them, in text order."""
    out: list[tuple[int, int, str, bool]] = []
    pos = 0
    for m in _FORMULA.finditer(text):
        body = next(g for g in m.groups() if g is not None).replace("\n", " ").strip()
        prev_formula = out and out[-1][3] is None
        if prev_formula and _JOINER.fullmatch(text[pos : m.start()]):
            start, _, joined, _ = out.pop()
            out.append((start, m.end(), f"{joined}, {body}", None))
        else:
            out.extend(_runs(text[pos : m.start()], pos))
            out.append((m.start(), m.end(), body, None))
        pos = m.end()
    out.extend(_runs(text[pos:], pos))
    return [(s, e, body, True if strong is None else strong) for s, e, body, strong in out]


def prediction_answer(prediction: str) -> str | None:
    """The answer's LaTeX in model output (rules in the module docstring), units stripped; None when
    the output holds no answer (nothing after its last "answer is", or no candidate at all)."""
    text = normalize(str(prediction))
    boxed = _boxes(text)
    if boxed is not None:
        return strip_units(boxed.replace("\n", " ")) or None
    anchors = list(_ANCHOR.finditer(text))
    if anchors:
        tail = anchors[-1].end()
        after = _candidates(text[tail:])
        return strip_units(after[0][2]) if after else None
    found = [c for c in _candidates(text) if c[3]]
    return strip_units(found[-1][2]) if found else None


def gold_answer(gold: str) -> str:
    """A gold's LaTeX: its box content when it has a box, else its text without outer ``$``; units stripped."""
    text = normalize(str(gold)).strip()
    boxed = _boxes(text)
    if boxed is not None:
        text = boxed
    else:
        m = _FORMULA.fullmatch(text)
        if m:
            text = next(g for g in m.groups() if g is not None)
    return strip_units(text.replace("\n", " "))

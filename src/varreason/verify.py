"""Answer verification: exact match, math equivalence (math-verify) and multiple-choice letters.

``verify(gold, prediction, kind)`` dispatches on ``kind``:

- ``"exact"``: both strings stripped, then string equality (what the embedded synthetic task's
  verifier ``task.is_correct`` does); a ``None`` prediction is wrong.
- ``"math"``: one answer is taken from each side as a LaTeX string (``varreason.verify_extract``),
  parsed whole by math-verify's LaTeX parser (as ``$answer$``) and compared with math-verify's
  ``verify`` (gold first: it is not symmetric). An answer that does not parse as a whole gives no
  expression (only string equality of the two normalized texts is left), never a partial one:
  ``2\\sqrt{3}``, ``10^{3}``, ``3x+1``, ``2ab`` are never read as 2, 10, 3, 2.

  - Gold: its ``\\boxed{}`` content when it has one, else its whole text (outer ``$`` removed).
  - Prediction: (1) with ``\\boxed{}``/``\\fbox{}``: the last box, with the boxes just before it
    (under 10 characters away, or within 70 characters and separated by "and"/"or"/",") read
    together as a set (math-verify's rule), so a hedged "\\boxed{17} or \\boxed{18}" is wrong for
    gold 18; (2) else the first candidate after the last "answer is" / "answer:" / "answer =" /
    "answer would (will, should, must) be" (nothing there: no answer); (3) else the text's last
    candidate. A candidate is a formula (``$...$``, ``$$...$$``, ``\\(...\\)``, ``\\[...\\]``;
    formulas joined by "and"/"or"/"," are one candidate, a set) or a bare math run: the longest
    stretch, on one line, of numbers, LaTeX commands, brace groups, operators ``+-*/^_=<>()[]|!,``,
    variables (one letter, unless a text word follows it as in "a day"; longer letter groups only
    touching a digit, ``}`` or ``)`` before them or a digit, ``(``, ``{``, ``\\``, ``^``, ``_`` after
    them: ``3x``, ``2ab``, ``xy^2``), unit words after a value (removed later), function names (sin,
    log, sqrt, pi, infinity, ...), "times", "plus", "minus", "over", "divided by", "squared",
    "cubed", and "and"/"or" between math (a set). Any other word, a line break or ". " ends a run;
    markdown ``**``, outer commas and a trailing "=" are dropped, a run starting with ``^ _ / !`` is
    ignored, and in (3) so is one with no digit, command or operator (a lone "a"; a lone "x" still
    counts after "answer is"). "so x = 5" reads ``x = 5``, which math-verify compares by its right
    side.
  - Both sides: ``%``, ``\\%`` and "percent" are removed (see below); the signs − × ÷ · π √ ∞ ≤ ≥
    ≠ ° become LaTeX; ``1,000``, ``1\\,000`` and ``1 000`` are 1000; trailing units are removed (up
    to three): a ``\\text{}`` / ``\\mathrm{}`` / ``\\mbox{}`` of words or of a one-letter unit m,
    s, g, L (so ``\\mathrm{i}`` stays), or a word of ``verify_extract.UNIT_WORDS`` (cm, kg, feet,
    minutes, dollars, square units, ...; m, s, g, L only after a number and a space), with a ^2 or
    ^3 after it. This replaces math-verify's unit list, which also drops variables (``3c`` is 3).
- ``"choice"``: the gold is a letter A-D; the prediction's letter is the last ``\\boxed{X}``, else the
  last "answer is (X)" / "answer: X", else the last standalone capital A-D.

Simplifications (stated, not hidden):

- ``\\%``, ``%`` and the words percent / percentage / pct are removed from both sides before math
  parsing: "10\\%" equals "10" (the MATH convention), not "0.1".
- math-verify's defaults are kept otherwise (its plain-expression reader is not used: ``**`` is no
  power): numbers agree to 6 decimal places after rounding (``1/3`` vs ``0.333333`` is True, ``1/3``
  vs ``0.33`` is False), intervals and ordered tuples must match exactly, ``(1,2)`` is read as an open
  interval on both sides, and ``2,3`` as the set {2, 3} on both sides.
- math-verify's own timeouts use ``signal.alarm`` (main thread only), so they are switched off
  (``parsing_timeout=None``, ``timeout_seconds=None``) and replaced by ours: each math check runs in a
  worker process of ``varreason.verify_pool`` (a fresh interpreter, safe from threads and from inside
  other pool workers); a check past ``timeout_s`` is counted as wrong and its worker is killed and
  replaced. A worker that dies (e.g. out of memory) is also a False. The timeout is wall-clock per
  check, counted from when a warm worker receives it.
- ``verify_math`` (and ``verify(..., "math")``) use one shared, lazily started worker guarded by a
  lock, so they can be called from any thread; ``timeout_s=None`` checks in the calling process with
  no time limit instead.

This module holds the rules (``check_exact``, ``check_choice``, ``check_math``, ``CHECKS``) and the
public API (``verify``, ``verify_math``, ``verify_many``); the worker processes are in
``varreason.verify_pool`` (``VerifierPool`` is importable from here too: it is ``verify_many``'s
``pool`` argument).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from varreason.sandbox import Limits
from varreason.verify_extract import gold_answer, prediction_answer
from varreason.verify_pool import VerifierPool, map_shared

KINDS = ("exact", "math", "choice", "choice10", "code")
CHOICE_LETTERS = "ABCD"
CHOICE10_LETTERS = "ABCDEFGHIJ"

# --------------------------------------------------------------------------------------- exact / choice


def check_exact(gold: str, prediction: str | None) -> bool:
    """Strip both sides, then compare strings (a missing prediction is wrong)."""
    return prediction is not None and str(prediction).strip() == str(gold).strip()


def _letter_patterns(letters: str) -> tuple[re.Pattern, ...]:
    r = f"[{letters[0]}-{letters[-1]}]"
    return (
        re.compile(rf"\\boxed\s*\{{\s*(?:\\text(?:bf)?\s*\{{\s*)?\(?\s*({r})\s*\)?\s*\}}?\s*\}}"),
        re.compile(
            rf"(?i:answer)\s*(?:(?i:is)|:)?\s*(?:(?i:option|choice)\s*)?[:\s]*[*_]*\s*\(?\s*({r})\s*\)?(?![A-Za-z0-9_])"
        ),
        re.compile(rf"(?<![A-Za-z0-9_\\])\(?({r})\)?(?![A-Za-z0-9_])"),
    )


_PATTERNS = {letters: _letter_patterns(letters) for letters in (CHOICE_LETTERS, CHOICE10_LETTERS)}


def extract_choice(text: str | None, letters: str = CHOICE_LETTERS) -> str | None:
    """The chosen letter in model output: last \\boxed{X}, else last "answer is X", else last lone letter.

    ``letters``: "ABCD" (kind ``choice``) or "ABCDEFGHIJ" (kind ``choice10``, MMLU-Pro's ten options).
    """
    if not text:
        return None
    for pattern in _PATTERNS[letters]:
        found = pattern.findall(text)
        if found:
            return found[-1].upper()
    return None


def _gold_letter(gold: str, letters: str = CHOICE_LETTERS) -> str:
    g = str(gold).strip().strip("()").strip().upper()
    if len(g) != 1 or g not in letters:
        raise ValueError(f"multiple-choice gold must be one of {list(letters)}, got {gold!r}")
    return g


def check_choice(gold: str, prediction: str | None) -> bool:
    """True when the letter A-D extracted from the prediction is the gold letter."""
    return extract_choice(prediction) == _gold_letter(gold)


def check_choice10(gold: str, prediction: str | None) -> bool:
    """True when the letter A-J extracted from the prediction is the gold letter (MMLU-Pro)."""
    return extract_choice(prediction, CHOICE10_LETTERS) == _gold_letter(gold, CHOICE10_LETTERS)


# ------------------------------------------------------------------------------------------------ math

_PERCENT = re.compile(r"\\?%|\s*\\text\{\s*(?:percent|percentage|pct)\s*\}|\s*\b(?:percent|percentage|pct)\b")
_mv = None  # (parse, verify, config), imported on first use


class _DropTimeoutDisabledWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Timeout is disabled" not in record.getMessage()


def _math_verify():
    global _mv
    if _mv is None:
        from latex2sympy2_extended.latex2sympy2 import NormalizationConfig
        from math_verify import LatexExtractionConfig, parse
        from math_verify import verify as mv_verify

        for name in ("math_verify.parser", "math_verify.grader"):
            logging.getLogger(name).addFilter(_DropTimeoutDisabledWarning())
        # math-verify's defaults except units=False: its unit list drops variables ("2ab" -> 2), so
        # verify_extract.strip_units removes units instead; boxes are already taken out
        norm = NormalizationConfig(
            basic_latex=True, units=False, malformed_operators=True, nits=True, boxed="none", equations=False
        )
        _mv = (parse, mv_verify, (LatexExtractionConfig(normalization_config=norm),))
    return _mv


def _parse_whole(latex: str) -> list:
    """math-verify's parse of ``latex`` as one formula: ``[expression, text]``, ``[text]`` when it
    does not parse as a whole, ``[]`` for empty text."""
    parse, _, cfg = _math_verify()
    body = re.sub(r"(?<!\\)\$", "", _PERCENT.sub("", latex)).strip()
    return parse(f"${body}$", extraction_config=cfg, parsing_timeout=None) if body else []


def parse_gold(gold: str) -> list:
    """math-verify's parse of a reference answer (plain, ``$...$`` or boxed); ``[]`` when empty."""
    return _parse_whole(gold_answer(_PERCENT.sub("", str(gold))))


def parse_prediction(prediction: str) -> list:
    """math-verify's parse of the answer found in model output (see the module docstring)."""
    answer = prediction_answer(_PERCENT.sub("", str(prediction)))
    return _parse_whole(answer) if answer else []


def check_math(gold: str, prediction: str | None) -> bool:
    """math-verify equivalence in this process, with no time limit (see ``verify_math`` for one)."""
    if prediction is None or not str(prediction).strip():
        return False
    _, mv_verify, _ = _math_verify()
    try:
        g = parse_gold(gold)
        p = parse_prediction(prediction)
        return bool(g) and bool(p) and bool(mv_verify(g, p, timeout_seconds=None))
    except Exception:  # math-verify swallows most errors itself; anything left is a failed check
        return False


CHECKS = {"exact": check_exact, "math": check_math, "choice": check_choice, "choice10": check_choice10}


# ------------------------------------------------------------------------------------------- public API


def verify_math(gold: str, prediction: str | None, timeout_s: float | None = 5.0) -> bool:
    """math-verify equivalence of ``prediction`` to ``gold``; False past ``timeout_s`` seconds.

    Runs in one shared worker process (started on first use, lock-guarded), so it is safe from any
    thread; ``timeout_s=None`` runs in this process without a limit. For many checks use
    ``verify_many`` (one round of worker start-up, several workers).
    """
    if timeout_s is None:
        return check_math(gold, prediction)
    return map_shared(["math"], [gold], [prediction], timeout_s)[0]


def verify(gold: str, prediction: str | None, kind: str = "math", *, timeout_s: float | None = 5.0) -> bool:
    """Dispatch on ``kind``: "exact", "math" (math-verify, time-limited), "choice" (letter A-D),
    "choice10" (A-J) or "code" (the answer's program against the gold's tests, in a sandbox)."""
    if kind == "math":
        return verify_math(gold, prediction, timeout_s)
    if kind == "code":
        from varreason import verify_code

        return verify_code.verdicts([gold], [prediction])[0] == "pass"
    if kind not in CHECKS:
        raise ValueError(f"unknown verifier kind {kind!r}; expected one of {list(KINDS)}")
    return CHECKS[kind](gold, prediction)


def verify_many(golds: Sequence[str], predictions: Sequence[str | None], **options) -> list[bool]:
    """True where ``verdicts`` (same arguments) says "pass"."""
    return [v == "pass" for v in verdicts(golds, predictions, **options)]


def verdicts(
    golds: Sequence[str],
    predictions: Sequence[str | None],
    *,
    kind: str | Sequence[str] = "math",
    timeout_s: float | None = 5.0,
    workers: int = 1,
    pool: VerifierPool | None = None,
    code_limits: Limits | None = None,
) -> list[str]:
    """Verify each prediction against its gold; ``kind`` is one for all or one per item.

    Math checks run in ``workers`` worker processes (or the given ``pool``), each limited to
    ``timeout_s`` seconds (a check past it is False; its worker is killed and replaced); identical
    (gold, prediction) pairs are checked once. Exact and choice checks run here (they are regexes).
    Code checks run the answer's program in ``workers`` sandboxes (``varreason.verify_code``, limits
    ``code_limits``, default ``Limits()``). Verdicts: "pass" or "fail", for code also "timeout" or
    "error".
    """
    golds, predictions = list(golds), list(predictions)
    if len(golds) != len(predictions):
        raise ValueError(f"{len(golds)} golds but {len(predictions)} predictions")
    kinds = [kind] * len(golds) if isinstance(kind, str) else list(kind)
    if len(kinds) != len(golds):
        raise ValueError(f"{len(kinds)} kinds for {len(golds)} items")
    bad = sorted({k for k in kinds if k not in KINDS})
    if bad:
        raise ValueError(f"unknown verifier kind(s) {bad}; expected one of {list(KINDS)}")
    out = [""] * len(golds)
    code = [i for i, k in enumerate(kinds) if k == "code"]
    if code:
        from varreason import verify_code

        found = verify_code.verdicts([golds[i] for i in code], [predictions[i] for i in code], code_limits, workers)
        for i, v in zip(code, found, strict=True):
            out[i] = v
    rest = [i for i, k in enumerate(kinds) if k != "code"]
    ok = _check_many([golds[i] for i in rest], [predictions[i] for i in rest], [kinds[i] for i in rest],
                     timeout_s, workers, pool)  # fmt: skip
    for i, good in zip(rest, ok, strict=True):
        out[i] = "pass" if good else "fail"
    return out


def _check_many(
    golds: list[str], predictions: list[str | None], kinds: list[str], timeout_s: float | None, workers: int,
    pool: VerifierPool | None,
) -> list[bool]:  # fmt: skip
    """Exact, choice and math checks (math in worker processes, identical pairs once)."""
    results = [False] * len(golds)
    unique: dict[tuple[str, str | None], list[int]] = {}
    for i, (k, g, p) in enumerate(zip(kinds, golds, predictions, strict=True)):
        if k != "math":
            results[i] = CHECKS[k](g, p)
        elif p is None or not str(p).strip():
            results[i] = False
        else:
            unique.setdefault((str(g), str(p)), []).append(i)
    if not unique:
        return results
    keys = list(unique)
    if timeout_s is None and workers == 1 and pool is None:
        found = [check_math(g, p) for g, p in keys]
    elif pool is not None:
        found = pool.map(["math"] * len(keys), [g for g, _ in keys], [p for _, p in keys], timeout_s)
    else:
        with VerifierPool(workers) as own:
            found = own.map(["math"] * len(keys), [g for g, _ in keys], [p for _, p in keys], timeout_s)
    for key, ok in zip(keys, found, strict=True):
        for i in unique[key]:
            results[i] = ok
    return results

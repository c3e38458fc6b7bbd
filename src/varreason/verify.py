"""Answer verification: exact match, math equivalence (math-verify) and multiple-choice letters.

``verify(gold, prediction, kind)`` dispatches on ``kind``:

- ``"exact"``: both strings stripped, then string equality (what the embedded synthetic task's
  verifier ``task.is_correct`` does); a ``None`` prediction is wrong.
- ``"math"``: Hugging Face math-verify (``parse`` + ``verify``, gold first: ``verify`` is not symmetric).
  The gold is parsed as plain LaTeX/expression text (wrapped in ``$...$`` when it has no delimiters,
  so ``3\\sqrt{2}`` is one expression and ``1,000`` is 1000); the prediction is model output, parsed
  preferring ``\\boxed{}``, then LaTeX, then plain expressions. Several ``\\boxed{}`` in one
  prediction are read together as the set of their contents (math-verify's ``boxed="all"``), so a
  hedged "\\boxed{17} ... \\boxed{18}" is wrong for gold 18.
- ``"choice"``: the gold is a letter A-D; the prediction's letter is the last ``\\boxed{X}``, else the
  last "answer is (X)" / "answer: X", else the last standalone capital A-D.

Simplifications (stated, not hidden):

- ``\\%`` and ``%`` are removed from both sides before math parsing: "10\\%" equals "10" (the MATH
  convention), not "0.1".
- math-verify's defaults are kept otherwise: numbers agree to 6 decimal places after rounding
  (``1/3`` vs ``0.333333`` is True, ``1/3`` vs ``0.33`` is False), intervals and ordered tuples must
  match exactly, and ``2,3`` is read as the set {2, 3} on both sides.
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

from varreason.verify_pool import VerifierPool, map_shared

KINDS = ("exact", "math", "choice")
CHOICE_LETTERS = "ABCD"

# --------------------------------------------------------------------------------------- exact / choice


def check_exact(gold: str, prediction: str | None) -> bool:
    """Strip both sides, then compare strings (a missing prediction is wrong)."""
    return prediction is not None and str(prediction).strip() == str(gold).strip()


_BOXED_LETTER = re.compile(r"\\boxed\s*\{\s*(?:\\text(?:bf)?\s*\{\s*)?\(?\s*([A-D])\s*\)?\s*\}?\s*\}")
_ANSWER_IS_LETTER = re.compile(
    r"(?i:answer)\s*(?:(?i:is)|:)?\s*(?:(?i:option|choice)\s*)?[:\s]*[*_]*\s*\(?\s*([A-D])\s*\)?(?![A-Za-z0-9_])"
)
_STANDALONE_LETTER = re.compile(r"(?<![A-Za-z0-9_\\])\(?([A-D])\)?(?![A-Za-z0-9_])")


def extract_choice(text: str | None) -> str | None:
    """The chosen letter A-D in model output: last \\boxed{X}, else last "answer is X", else last lone A-D."""
    if not text:
        return None
    for pattern in (_BOXED_LETTER, _ANSWER_IS_LETTER, _STANDALONE_LETTER):
        found = pattern.findall(text)
        if found:
            return found[-1].upper()
    return None


def _gold_letter(gold: str) -> str:
    g = str(gold).strip().strip("()").strip().upper()
    if len(g) != 1 or g not in CHOICE_LETTERS:
        raise ValueError(f"multiple-choice gold must be one of {list(CHOICE_LETTERS)}, got {gold!r}")
    return g


def check_choice(gold: str, prediction: str | None) -> bool:
    """True when the letter extracted from the prediction is the gold letter."""
    return extract_choice(prediction) == _gold_letter(gold)


# ------------------------------------------------------------------------------------------------ math

_PERCENT = re.compile(r"\\?%")
_DELIMITED = re.compile(r"\$|\\boxed|\\\(|\\\[")
_mv = None  # (parse, verify, gold_config, prediction_config), imported on first use


class _DropTimeoutDisabledWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Timeout is disabled" not in record.getMessage()


def _math_verify():
    global _mv
    if _mv is None:
        from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse
        from math_verify import verify as mv_verify

        for name in ("math_verify.parser", "math_verify.grader"):
            logging.getLogger(name).addFilter(_DropTimeoutDisabledWarning())
        gold_cfg = (LatexExtractionConfig(), ExprExtractionConfig())
        pred_cfg = (LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig())
        _mv = (parse, mv_verify, gold_cfg, pred_cfg)
    return _mv


def _has_expression(parsed: list) -> bool:
    return any(not isinstance(x, str) for x in parsed)


def parse_gold(gold: str) -> list:
    """math-verify's parse of a reference answer (plain or boxed); ``[]`` when nothing parses."""
    parse, _, cfg, _ = _math_verify()
    g = _PERCENT.sub("", str(gold)).strip()
    if not g:
        return []
    if _DELIMITED.search(g):
        return parse(g, extraction_config=cfg, parsing_timeout=None)
    wrapped = parse(f"${g}$", extraction_config=cfg, parsing_timeout=None)
    if _has_expression(wrapped):
        return wrapped
    return parse(g, extraction_config=cfg, parsing_timeout=None) or wrapped


def parse_prediction(prediction: str) -> list:
    """math-verify's parse of model output: \\boxed{} first, then LaTeX, then plain expressions."""
    parse, _, _, cfg = _math_verify()
    return parse(_PERCENT.sub("", str(prediction)), extraction_config=cfg, parsing_timeout=None)


def check_math(gold: str, prediction: str | None) -> bool:
    """math-verify equivalence in this process, with no time limit (see ``verify_math`` for one)."""
    if prediction is None or not str(prediction).strip():
        return False
    _, mv_verify, _, _ = _math_verify()
    try:
        g = parse_gold(gold)
        p = parse_prediction(prediction)
        return bool(g) and bool(p) and bool(mv_verify(g, p, timeout_seconds=None))
    except Exception:  # math-verify swallows most errors itself; anything left is a failed check
        return False


CHECKS = {"exact": check_exact, "math": check_math, "choice": check_choice}


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
    """Dispatch on ``kind``: "exact", "math" (math-verify, time-limited) or "choice" (letter A-D)."""
    if kind == "math":
        return verify_math(gold, prediction, timeout_s)
    if kind not in CHECKS:
        raise ValueError(f"unknown verifier kind {kind!r}; expected one of {list(KINDS)}")
    return CHECKS[kind](gold, prediction)


def verify_many(
    golds: Sequence[str],
    predictions: Sequence[str | None],
    *,
    kind: str | Sequence[str] = "math",
    timeout_s: float | None = 5.0,
    workers: int = 1,
    pool: VerifierPool | None = None,
) -> list[bool]:
    """Verify each prediction against its gold; ``kind`` is one for all or one per item.

    Math checks run in ``workers`` worker processes (or the given ``pool``), each limited to
    ``timeout_s`` seconds (a check past it is False; its worker is killed and replaced); identical
    (gold, prediction) pairs are checked once. Exact and choice checks run here (they are regexes).
    """
    golds, predictions = list(golds), list(predictions)
    if len(golds) != len(predictions):
        raise ValueError(f"{len(golds)} golds but {len(predictions)} predictions")
    kinds = [kind] * len(golds) if isinstance(kind, str) else list(kind)
    if len(kinds) != len(golds):
        raise ValueError(f"{len(kinds)} kinds for {len(golds)} items")
    bad = sorted({k for k in kinds if k not in CHECKS})
    if bad:
        raise ValueError(f"unknown verifier kind(s) {bad}; expected one of {list(KINDS)}")

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
        verdicts = [check_math(g, p) for g, p in keys]
    elif pool is not None:
        verdicts = pool.map(["math"] * len(keys), [g for g, _ in keys], [p for _, p in keys], timeout_s)
    else:
        with VerifierPool(workers) as own:
            verdicts = own.map(["math"] * len(keys), [g for g, _ in keys], [p for _, p in keys], timeout_s)
    for key, ok in zip(keys, verdicts, strict=True):
        for i in unique[key]:
            results[i] = ok
    return results

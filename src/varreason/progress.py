"""Progress bars for long work: live in a terminal, a few plain lines in a log file.

tqdm redraws its bar with carriage returns; written to a log that is one ever-growing line. When
stderr is not a terminal (Snakemake and DVC jobs log to files) the bar is written as whole lines,
at most one every ``LOG_INTERVAL_S`` seconds, plus the final one.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from tqdm.auto import tqdm

LOG_INTERVAL_S = 30.0


class _Lines:
    """A file-like object that turns tqdm's carriage-return redraws into separate lines."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, s: str) -> None:
        text = s.replace("\r", "\n")
        lines = [line for line in text.split("\n") if line.strip()]
        if lines:
            self.stream.write("\n".join(lines) + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress(iterable: Iterable, desc: str, total: int | None = None, unit: str = "it", **kw) -> tqdm:
    if sys.stderr.isatty():
        return tqdm(iterable, desc=desc, total=total, unit=unit, mininterval=0.5, **kw)
    return tqdm(
        iterable,
        desc=desc,
        total=total,
        unit=unit,
        mininterval=LOG_INTERVAL_S,
        maxinterval=LOG_INTERVAL_S * 4,
        file=_Lines(sys.stderr),
        ascii=True,
        ncols=100,
        **kw,
    )

"""Progress bars: in a log (stderr not a terminal) a few whole lines, never carriage-return redraws."""

import time

from varreason import progress as P


def test_progress_in_a_log_writes_few_whole_lines(capsys, monkeypatch):
    monkeypatch.setattr(P, "LOG_INTERVAL_S", 0.05)
    for _ in P.progress(range(40), desc="scoring", unit="batch"):
        time.sleep(0.01)
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert "\r" not in err
    assert lines[-1].startswith("scoring: 100%") and "40/40" in lines[-1]
    # one line per interval (0.4 s of work / 0.05 s), not one per item
    assert 3 <= len(lines) <= 15


def test_progress_in_a_log_is_quiet_for_fast_loops(capsys):
    for _ in P.progress(range(1000), desc="sampling", total=1000):
        pass
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) <= 2 and "1000/1000" in lines[-1]

"""Stage ``baselines``: build a baseline's training set (SFT: the original data; RFT: pi_0's
verified-correct samples) and train pi_0 on it with the same budget as VR's final model.

Under ``accelerate launch`` the main process builds the set and every process trains on it.
"""

from __future__ import annotations

from pathlib import Path

from varreason.stages.build import build_baseline
from varreason.stages.train import train_final
from varreason.training import process_state


def baselines(
    params: dict,
    kind: str,
    train: str | Path,
    samples: list[str | Path],
    initial: str | Path,
    set_out: str | Path,
    set_metrics: str | Path,
    out: str | Path,
) -> list[dict]:
    """Build the ``kind`` baseline's set (``set_out``, ``set_metrics``) and train ``out`` on it."""
    state = process_state()
    if state.is_main_process:
        build_baseline(params, kind, train, samples, initial, set_out, set_metrics)
    state.wait_for_everyone()
    return train_final(params, set_out, initial, out)

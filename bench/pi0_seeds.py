"""pi_0 across seeds: how often training pi_0 fails, with the params as they are or changed.

    .venv/bin/python bench/pi0_seeds.py --seeds 0 1 2 3 4 5 6 7 8 9              # ~25 min on 2 cores
    .venv/bin/python bench/pi0_seeds.py --seeds 3 7 --set train_initial.steps=1500  # the old budget

For each seed: the stages prepare, train-initial and evaluate (initial) into ``--out``/seed-N,
two seeds at a time (``--jobs``). Prints per seed pi_0's greedy accuracy and pass@1 on the held-out
questions, the constant guess (always the most common training answer), the final smoothed
training loss, and whether the claims plan's inclusion rule holds (pass@1 above the constant
guess); then the failure rate. A failed pi_0 sits on the loss plateau near 0.4 (it writes the
question's operations but not their values); when it leaves the plateau depends on the seed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent


def run_seed(seed: int, out: Path, sets: list[str], params: Path) -> dict:
    d = out / f"seed-{seed}"
    d.mkdir(parents=True, exist_ok=True)
    base = [str(Path(sys.executable).parent / "varreason"), "--params", str(params), "--set", f"seed={seed}"]
    for s in sets:
        base += ["--set", s]
    prep, test = d / "train.parquet", d / "test.parquet"
    steps = [
        ["prepare", "--train-out", str(prep), "--test-out", str(test)],
        ["--threads", "1", "train-initial", "--train", str(prep), "--out", str(d / "initial")],
        ["evaluate", "--name", "initial", "--model", str(d / "initial"), "--test", str(test)]
        + ["--out", str(d / "eval.parquet"), "--metrics", str(d / "eval.json")],
    ]
    with open(d / "log.txt", "w") as log:
        for args in steps:
            if not (d / "eval.json").exists():
                subprocess.run([*base, *args], stdout=log, stderr=log, check=True)
    m = json.loads((d / "eval.json").read_text())
    train, held = pd.read_parquet(prep), pd.read_parquet(test)
    guess = float((held["answer"] == train["answer"].mode().iloc[0]).mean())
    history = json.loads((d / "initial" / "train_log.json").read_text())["history"]
    return {
        "seed": seed,
        "greedy": m["greedy_acc"],
        "pass1": m["pass@1"],
        "constant_guess": guess,
        "final_loss": history[-1]["smoothed_loss"],
        "included": m["pass@1"] > guess,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a params override")
    ap.add_argument("--params", type=Path, default=REPO / "params.yaml")
    ap.add_argument("--out", type=Path, default=Path("runs/pi0-seeds"))
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args(argv)
    with ThreadPoolExecutor(a.jobs) as pool:
        rows = list(pool.map(lambda s: run_seed(s, a.out, a.set, a.params), a.seeds))
    print("| seed | pi_0 greedy % | pass@1 % | constant guess % | final loss | included |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['seed']} | {100 * r['greedy']:.1f} | {100 * r['pass1']:.1f} | {100 * r['constant_guess']:.1f}"
            f" | {r['final_loss']:.3f} | {'yes' if r['included'] else 'no'} |"
        )
    failed = sum(not r["included"] for r in rows)
    what = ", ".join(a.set) or "params as they are"
    print(f"failed (pass@1 not above the constant guess): {failed} of {len(rows)} ({what})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The claims run: every arm of the method, its baselines and ablations, once per seed.

One place defines what is compared, so the Snakemake rules (workflow/rules/claims.smk) and the
report (stages/claims_report.py) cannot disagree. Each seed's artifacts live under
``claims/seed-{seed}/`` with the main run's layout (paths.py) beneath it.

Proposal sources (K traces per training question, each scored under pi_0 and the proposal):
- ``posterior``: q(z|x,y') trained with the hint (the method);
- ``nohint``: pi_0's own traces (the proposal sees no answer; the log-ratio is exactly 0);
- ``round2``: q after a forward-KL update on its own weighted traces, sampled again.
"""

from __future__ import annotations

from dataclasses import dataclass

ROOT = "claims"
SEED_DIR = ROOT + "/seed-{seed}/"
REPORT_JSON = ROOT + "/claims.json"
REPORT_PAGE = ROOT + "/claims.md"
REPORT_LOG = ROOT + "/logs/claims_report.log"

SOURCES = ("posterior", "nohint", "round2")
SAMPLES = SEED_DIR + "data/traces/{source}/shard-{shard}.parquet"
SCORED = SEED_DIR + "data/traces/scored-{source}/shard-{shard}.parquet"
ROUND2_POSTERIOR = SEED_DIR + "data/models/posterior-round2"
WEIGHTS = SEED_DIR + "data/traces/weighted-{variant}.parquet"
WEIGHT_METRICS = SEED_DIR + "metrics/weights-{variant}.json"
ARM_SET = SEED_DIR + "data/train/{arm}.parquet"
ARM_SET_METRICS = SEED_DIR + "metrics/train-set-{arm}.json"
ARM_MODEL = SEED_DIR + "data/models/{arm}"
EVAL_SAMPLES = SEED_DIR + "data/eval/{model}.parquet"
EVAL_METRICS = SEED_DIR + "metrics/eval/{model}.json"


@dataclass(frozen=True)
class Variant:
    """A set of importance weights: which proposal's traces, which estimator, which param changes."""

    source: str
    estimator: str
    sets: tuple[str, ...] = ()


VARIANTS = {
    "gml": Variant("posterior", "gml"),
    "acc": Variant("posterior", "acc"),
    "gml-sum": Variant("posterior", "gml", ("scoring.ratio=sum",)),
    "nohint": Variant("nohint", "gml"),
    "round2": Variant("round2", "gml"),
}


@dataclass(frozen=True)
class Arm:
    """A trained model: a baseline (``sft``/``rft``) or a VR selection from a weights variant."""

    label: str
    baseline: str | None = None
    variant: str | None = None
    mode: str = "threshold"
    mix: bool = True

    @property
    def sets(self) -> tuple[str, ...]:
        extra = VARIANTS[self.variant].sets if self.variant else ()
        return (*extra, f"select.mode={self.mode}", f"select.mix_original={str(self.mix).lower()}")


ARMS = {
    "sft": Arm("SFT at equal compute", baseline="sft"),
    "rft": Arm("RFT, mixed with the original data", baseline="rft"),
    "rft-alone": Arm("RFT, kept traces alone", baseline="rft", mix=False),
    **{
        f"vr-{est}-{mode}": Arm(f"VR-{est.upper()}, {mode}", variant=est, mode=mode)
        for est in ("gml", "acc")
        for mode in ("argmax", "threshold", "soft")
    },
    "vr-gml-threshold-alone": Arm("VR-GML, threshold, selected traces alone", variant="gml", mix=False),
    "vr-gml-sum-threshold": Arm("VR-GML, threshold, summed log-ratio", variant="gml-sum"),
    "nohint-threshold": Arm("no hint: the rule on pi_0's own traces", variant="nohint"),
    "round2-gml-threshold": Arm("VR-GML, threshold, round two (q updated by forward KL)", variant="round2"),
}
MODELS = ("initial", *ARMS)
# The method as the pipeline runs it by default, and what the targets compare it with.
PRIMARY = "vr-gml-threshold"
TARGET_BASELINES = ("sft", "rft")


def seed_path(pattern: str, seed: int | str, **wildcards) -> str:
    return pattern.format(seed=seed, **wildcards)

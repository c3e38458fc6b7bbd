"""The claims run: the method, its baselines and the arms that take its gain apart, across seeds.

One place defines what is trained and compared, so the Snakemake rules (workflow/rules/claims.smk)
and the report (stages/claims_report.py) cannot disagree: the arms are here; which arms run on
which seeds, the comparisons, the tests and the seed-inclusion rule are in the pre-registered plan
(``claims/plan.yaml``, read by ``load_plan``). Each seed's artifacts live under
``claims/seed-{seed}/`` with the main run's layout (paths.py) beneath it.

Proposal sources (K traces per training question, each scored under pi_0 and the proposal):
- ``posterior``: q(z|x,y') trained with the hint (the method);
- ``nohint``: pi_0's own traces (the proposal sees no answer; the log-ratio is exactly 0);
- ``round2``: q after a forward-KL update on its own weighted traces, sampled again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = "claims"
PLAN = ROOT + "/plan.yaml"
SEED_DIR = ROOT + "/seed-{seed}/"
REPORT_JSON = ROOT + "/claims.json"
REPORT_PAGE = ROOT + "/claims.md"
REPORT_LOG = ROOT + "/logs/claims_report.log"

SOURCES = ("posterior", "nohint", "round2")
SAMPLES = SEED_DIR + "data/traces/{source}/shard-{shard}.parquet"
SCORED = SEED_DIR + "data/traces/scored-{source}/shard-{shard}.parquet"
# pi_0's samples with another K than sampling.k (RFT at VR's compute)
INITIAL_K_SAMPLES = SEED_DIR + "data/traces/initial-k{k}/shard-{shard}.parquet"
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
    """A trained model: a baseline (``baseline`` kind of stages/build.py) or a selection from a weights
    variant, with its own param overrides (``extra``) and, for RFT, pi_0's samples at ``initial_k``."""

    label: str
    baseline: str | None = None
    variant: str | None = None
    mode: str = "threshold"
    mix: bool = True
    extra: tuple[str, ...] = ()
    initial_k: int | None = None

    @property
    def sets(self) -> tuple[str, ...]:
        own = VARIANTS[self.variant].sets if self.variant else ()
        mode = (f"select.mode={self.mode}",) if self.variant else ()
        return (*own, *mode, f"select.mix_original={str(self.mix).lower()}", *self.extra)

    @property
    def samples_pi0(self) -> bool:
        return self.baseline in ("rft", "grpo")


# RFT at VR's sampling and scoring compute: VR samples K traces and scores each under two models
MATCHED_K = 24
ARMS = {
    "sft": Arm("SFT at equal compute (the original traces)", baseline="sft"),
    "rft": Arm("RFT, mixed with the original data", baseline="rft"),
    "rft-alone": Arm("RFT, kept traces alone", baseline="rft", mix=False),
    "vr-gml-threshold": Arm("VR-GML, threshold (the default)", variant="gml"),
    "vr-gml-threshold-alone": Arm("VR-GML, threshold, selected traces alone", variant="gml", mix=False),
    # taking the gain apart
    "answer-threshold": Arm(
        "the answer term alone (no log-ratio), threshold", variant="gml", extra=("select.score=log_likelihood",)
    ),
    "star-filter": Arm(
        "STaR-style: a hinted trace after which pi_0's answers are right (acc > threshold), one drawn per question",
        variant="acc",
        mode="filter",
        extra=("select.score=log_likelihood",),
    ),
    "rft-one": Arm("RFT, one kept trace per question", baseline="rft", extra=("baselines.rft_per_question=1",)),
    f"rft-k{MATCHED_K}": Arm(
        f"RFT from K={MATCHED_K} samples (VR's sampling + scoring passes)", baseline="rft", initial_k=MATCHED_K
    ),
    "oracle-sft": Arm("SFT on the finest correct traces (oracle upper bound)", baseline="oracle", mix=False),
    "grpo-sft": Arm("offline GRPO: pi_0's correct samples weighted by their advantage", baseline="grpo"),
    "vr-gml-soft": Arm("VR-GML, soft: one trace per question drawn in proportion to rho~", variant="gml", mode="soft"),
    "vr-gml-valid": Arm(
        "VR-GML, threshold, among fully valid traces only", variant="gml", extra=("select.valid_only=true",)
    ),
    "vr-gml-argmax": Arm("VR-GML, argmax (one trace for every question)", variant="gml", mode="argmax"),
    "nohint-threshold": Arm("no hint: the rule on pi_0's own traces", variant="nohint"),
    # further ablations (the plan gives them seeds or not)
    "vr-acc-threshold": Arm("VR-Acc, threshold", variant="acc"),
    "vr-gml-sum-threshold": Arm("VR-GML, threshold, summed log-ratio", variant="gml-sum"),
    "round2-gml-threshold": Arm("VR-GML, threshold, round two (q updated by forward KL)", variant="round2"),
}
MODELS = ("initial", *ARMS)
# The method as the pipeline runs it by default.
PRIMARY = "vr-gml-threshold"


class PlanError(ValueError):
    pass


@dataclass(frozen=True)
class Plan:
    """The pre-registered plan: seeds per tier of arms, comparison families, tests and inclusion rule."""

    path: str
    registered: str
    tiers: dict[str, dict]  # name -> {"seeds": [...], "arms": [...]}
    families: dict[str, list[dict]]  # name -> [{"a", "b", "metric", "what"}]
    alpha: float
    level: float
    inclusion: dict
    raw: dict

    def arm_seeds(self, arm: str) -> list[int]:
        return sorted({s for t in self.tiers.values() if arm in t["arms"] for s in t["seeds"]})

    @property
    def seeds(self) -> list[int]:
        return sorted({s for t in self.tiers.values() for s in t["seeds"]})

    def models_of(self, seed: int) -> list[str]:
        """pi_0 and the arms trained on ``seed``, in ARMS order."""
        return ["initial", *[a for a in ARMS if seed in self.arm_seeds(a)]]

    def variants_of(self, seed: int) -> list[str]:
        return sorted({ARMS[a].variant for a in self.models_of(seed)[1:] if ARMS[a].variant})


def load_plan(path: str | Path) -> Plan:
    """Read and check the plan: every arm known, every compared arm trained on every seed of its comparison."""
    path = Path(path)
    if not path.exists():
        raise PlanError(f"{path}: no claims plan (params claims.plan); the repository's is {PLAN}")
    raw = yaml.safe_load(path.read_text()) or {}
    try:
        tiers = {n: {"seeds": [int(s) for s in t["seeds"]], "arms": list(t["arms"])} for n, t in raw["tiers"].items()}
        families = {n: [{"what": "", **c} for c in comps] for n, comps in raw["families"].items()}
        tests, inclusion = raw["tests"], raw["inclusion"]
        alpha, level = float(tests["alpha"]), float(tests["level"])
    except (KeyError, TypeError, ValueError) as e:
        raise PlanError(f"{path}: needs tiers (seeds, arms), families, tests (alpha, level), inclusion: {e}") from e
    for n, t in tiers.items():
        for a in t["arms"]:
            if a not in ARMS:
                raise PlanError(f"{path}: tier {n}: unknown arm {a!r} (arms: {', '.join(ARMS)})")
    plan = Plan(str(path), str(raw.get("registered", "")), tiers, families, alpha, level, inclusion, raw)
    for n, comps in families.items():
        for c in comps:
            for key in ("a", "b"):
                if c.get(key) != "initial" and not plan.arm_seeds(c.get(key)):
                    raise PlanError(f"{path}: family {n}: {c.get(key)!r} is not an arm of any tier with seeds")
            if c.get("metric") not in ("greedy", "pass1"):
                raise PlanError(f"{path}: family {n}: metric must be greedy or pass1, got {c.get('metric')!r}")
    if inclusion.get("rule") != "pi0_pass1_above_constant_guess":
        raise PlanError(f"{path}: inclusion.rule must be pi0_pass1_above_constant_guess, got {inclusion.get('rule')!r}")
    return plan


def seed_path(pattern: str, seed: int | str, **wildcards) -> str:
    return pattern.format(seed=seed, **wildcards)

# Helpers of the claims run (`snakemake claims`; its rules are in claims.smk): the arms of the
# pre-registered plan (params claims.plan, claims/plan.yaml) on the seeds it gives each, then one
# report across seeds. Arms and layout: src/varreason/claims.py. Each seed's jobs are the main rules
# re-used with the seed's folder as paths and `--set seed=N` (plus the arm's own overrides).

from snakemake.exceptions import WorkflowError

import varreason.claims as VC

try:
    PLAN = VC.load_plan(config["claims"]["plan"])
    PLAN_ERROR = None
except VC.PlanError as e:  # only `snakemake claims` needs the plan
    PLAN, PLAN_ERROR = None, str(e)
VR_ARMS = [a for a, arm in VC.ARMS.items() if arm.variant]
BASELINE_ARMS = [a for a, arm in VC.ARMS.items() if arm.baseline]


wildcard_constraints:
    seed=r"\d+",
    k=r"\d+",
    source="|".join(VC.SOURCES),
    variant="|".join(VC.VARIANTS),


def plan():
    if PLAN is None:
        raise WorkflowError(PLAN_ERROR)
    return PLAN


def cp(path):
    """A main-run path inside one seed's claims folder."""
    return VC.SEED_DIR + path


def claim_set(w, *extra):
    return f" --set seed={w.seed}" + "".join(f" --set {shlex.quote(e)}" for e in extra)


def seed_set(w):
    return claim_set(w)


def proposal_dir(w):
    return {
        "posterior": cp(P.POSTERIOR_MODEL),
        "nohint": cp(P.INITIAL_MODEL),
        "round2": VC.ROUND2_POSTERIOR,
    }[w.source].format(seed=w.seed)


def seed_shards(pattern, w, **kw):
    return [pattern.format(seed=w.seed, shard=s, **kw) for s in SHARDS]


def variant_inputs(w):
    v = VC.VARIANTS[w.variant]
    rollouts = seed_shards(cp(P.ROLLOUTS), w) if v.estimator == "acc" else []
    return {"scored": seed_shards(VC.SCORED, w, source=v.source), "rollouts": rollouts}


def baseline_samples(w):
    """pi_0's sample shards an RFT/GRPO arm learns from (at its own K, if it has one)."""
    arm = VC.ARMS[w.arm]
    if not arm.samples_pi0:
        return []
    if arm.initial_k:
        return seed_shards(VC.INITIAL_K_SAMPLES, w, k=arm.initial_k)
    return seed_shards(cp(P.INITIAL_SAMPLES), w)


def report_inputs(w):
    """Every file the report reads: each seed's models of the plan, their sets, weights and pi_0's samples."""
    p = plan()
    at = lambda pattern, s, **kw: pattern.format(seed=s, **kw)
    return {
        "plan": p.path,
        "evals": [at(VC.EVAL_SAMPLES, s, model=m) for s in p.seeds for m in p.models_of(s)],
        "weights": [at(VC.WEIGHTS, s, variant=v) for s in p.seeds for v in p.variants_of(s)],
        "weight_metrics": [at(VC.WEIGHT_METRICS, s, variant=v) for s in p.seeds for v in p.variants_of(s)],
        "sets": [at(VC.ARM_SET_METRICS, s, arm=a) for s in p.seeds for a in p.models_of(s)[1:]],
        "initial_samples": [at(cp(P.INITIAL_SAMPLES), s, shard=h) for s in p.seeds for h in SHARDS],
        "prepared": [at(cp(x), s) for s in p.seeds for x in (P.PREPARED_TRAIN, P.PREPARED_TEST)],
    }

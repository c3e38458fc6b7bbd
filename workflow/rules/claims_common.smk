# Helpers of the claims run (`snakemake claims`; its rules are in claims.smk): every arm, baseline
# and ablation once per seed in params claims.seeds, then one report across seeds.
# Arms and layout: src/varreason/claims.py. Each seed's jobs are the main rules re-used with the
# seed's folder as paths and `--set seed=N` (plus the arm's own overrides) on the command line.

import varreason.claims as VC

CLAIM_SEEDS = config["claims"]["seeds"]
VR_ARMS = [a for a, arm in VC.ARMS.items() if arm.variant]
BASELINE_ARMS = [a for a, arm in VC.ARMS.items() if arm.baseline]


wildcard_constraints:
    seed=r"\d+",
    source="|".join(VC.SOURCES),
    variant="|".join(VC.VARIANTS),


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

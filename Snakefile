"""varreason: the variational-reasoning pipeline as one DAG.

Run it with `snakemake --cores 2` (or `make run`); on a cluster with `snakemake --profile
workflow/profiles/slurm`. Every rule calls one `varreason` subcommand; paths come from
src/varreason/paths.py, parameters from params.yaml (validated against the schema first).
"""

from snakemake.utils import min_version, validate

from varreason import paths as P

min_version("9.0")


configfile: "params.yaml"


validate(config, "workflow/schemas/params.schema.yaml")

SHARDS = list(range(config["sampling"]["shards"]))
# --params names the file the stages re-read and re-validate; --threads comes from the rule.
VR = "varreason --params params.yaml --threads {threads}"
GPU = {"gpu": config["runtime"]["gpus"]} if config["runtime"]["gpus"] > 0 else {}
T = config["runtime"]["threads"]


include: "workflow/rules/common.smk"
include: "workflow/rules/prepare.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/sample.smk"
include: "workflow/rules/weights.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/evaluate.smk"


rule all:
    input:
        P.SUMMARY,
        P.REPORT_PAGE,
    default_target: True


onsuccess:
    if os.path.exists(P.REPORT_PAGE):
        print("\n" + open(P.REPORT_PAGE).read())

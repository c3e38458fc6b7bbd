"""The codebase stays one a newcomer can hold in their head: the stage table is the one description of
a stage (CLI, docs, data/README.md agree with it), no import cycles, inspection without torch,
files small enough to read in one sitting."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys

import pytest

from conftest import REPO
from varreason import paths as P
from varreason.dvcyaml import closure, imports
from varreason.pipeline import COMMANDS, STAGES, stage_table_markdown

SRC = REPO / "src" / "varreason"


def _module(path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(("varreason", *(parts[:-1] if parts[-1] == "__init__" else parts)))


MODULES = sorted(_module(p) for p in SRC.rglob("*.py"))


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of the graph (a list of modules, first = last), or None."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m], _ = 1, path.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return [*path[path.index(n) :], n]
            if n not in state and (found := visit(n)):
                return found
        state[m], _ = 2, path.pop()
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_cycle_in_the_package():
    # every import counts, at the top of a module or inside a function
    graph = {m: imports(m) for m in MODULES}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_each_option_is_a_keyword_of_its_function_or_fills_another_default():
    for c in COMMANDS.values():
        accepted = set(inspect.signature(c.load()).parameters)
        patterns = " ".join(str(c.option(n).default) + str(c.option(n).show) for n in c.options)
        for name in c.options:
            dest = c.option(name).dest or name
            assert dest in accepted or "{" + name + "}" in patterns, f"{c.name} --{name}: used by nothing"
        if c.is_stage:
            assert "params" in accepted, c.name
            assert set(c.writes) <= set(c.options), c.name


def test_stage_modules_run_no_cli_and_no_table():
    # a stage depends on the code it runs: editing the CLI or a help string in the table changes no stage
    for c in STAGES:
        assert not {"varreason.cli", "varreason.pipeline"} & closure(c.module), c.name


def test_rules_read_the_keys_of_the_stage_table():
    rules = "\n".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk"))
    assert "params_of(" not in rules.replace("return params_of(", "").replace("def params_of(", ""), (
        "a rule lists params keys by hand: use stage_reads"
    )
    named = set(re.findall(r'stage_reads\("([\w-]+)"\)', rules))
    assert named <= set(COMMANDS)
    # every stage that has a rule of its own is named by it (update-posterior and claims-report: claims rules)
    assert named == {c.name for c in STAGES}


@pytest.mark.parametrize("command", ["traces", "doctor", "dvc-yaml", "validate-params"])
def test_inspection_commands_do_not_import_torch(command):
    code = (
        "import sys\nfrom varreason.cli import main\n"
        f"try:\n    main([{command!r}, '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"


def test_traces_summary_imports_no_model_code(tmp_path):
    # the command itself (not just --help) on a real corpus: a tiny weights table and pi_0 samples
    import pandas as pd

    corpus = tmp_path / "weighted.parquet"
    pd.DataFrame(
        {
            "question_id": ["q0", "q0", "q1", "q1"],
            "sample_index": [0, 1, 0, 1],
            "question": ["5-1-2"] * 2 + ["3+4"] * 2,
            "answer": ["24", "24", "77", "77"],
            "trace": ["-1=4-2=2", "-1-2=2", "+4=7", "+4=8"],
            "finish_reason": ["stop"] * 4,
            "log_weight": [-0.1, -3.0, float("-inf"), -0.5],
            "weight": [0.94, 0.06, 0.0, 1.0],
        }
    ).to_parquet(corpus)
    code = (
        "import sys\nfrom varreason.cli import main\n"
        f"rc = main(['--params', {str(REPO / 'params.yaml')!r}, 'traces', 'summary', '--corpus', {str(corpus)!r},"
        " '--initial-samples', '--json'])\n"
        "print(rc, sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "0 []"
    assert '"questions": 2' in r.stdout and '"verified_valid_traces": 0.75' in r.stdout  # 3 of 4 traces valid


def test_docs_stage_table_is_the_stage_table():
    table = stage_table_markdown()
    for page in ("docs/pipeline.md", "data/README.md"):
        text = (REPO / page).read_text()
        inside = re.search(r"<!-- stages:begin -->\n(.*?)<!-- stages:end -->", text, flags=re.S)
        assert inside, f"{page}: no stage table markers"
        assert inside.group(1) == table, f"{page}: the stage table differs: paste pipeline.stage_table_markdown()"


def test_data_readme_maps_every_artifact_folder():
    text = (REPO / "data" / "README.md").read_text()
    folders = {p.split("/")[1] for p in vars(P).values() if isinstance(p, str) and p.startswith("data/")}
    for folder in folders:
        assert f"data/{folder}/" in text, folder


def test_no_file_in_src_is_too_long_to_read_in_one_sitting():
    long = {str(p.relative_to(REPO)): n for p in SRC.rglob("*.py") if (n := len(p.read_text().splitlines())) > 410}
    assert not long, long


OUTSIDE_DESIGN, OUTSIDE_NOTES = "ARCHITECTURE" + ".md", "shared" + "/notes"  # spelled apart: this file is checked too


def test_nothing_cites_a_file_outside_the_repository():
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split()
    for f in tracked:
        if f.endswith((".py", ".smk", ".md", ".yaml", ".sh", ".rst", "Snakefile", "Makefile")):
            text = (REPO / f).read_text(errors="replace")
            assert OUTSIDE_DESIGN not in text and OUTSIDE_NOTES not in text and "../" + "shared" not in text, f


def test_doctor_checks_torch_without_importing_it(tmp_path):
    # the torch check runs in a child process: doctor reports torch's threads without loading it itself
    code = (
        "import sys\nfrom varreason.doctor import doctor_checks\n"
        "checks = doctor_checks(None, only='env')\n"
        "print([c.name for c in checks if c.name == 'threads' and 'torch uses' in c.detail],"
        " sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "['threads'] []"


@pytest.mark.parametrize(
    "path, stage",
    [
        ("data/models/initial", "stage train_initial (`varreason train-initial`, or `snakemake data/models/initial`)"),
        ("/run/data/models/final-acc", "stage train_final (`varreason train-final --estimator acc`"),
        ("data/models/baseline-rft", "stage baselines (`varreason baselines --kind rft`"),
        ("data/traces/scored/shard-1.parquet", "stage score (`varreason score --shard 1`"),
        ("metrics/eval/vr-gml.json", "stage evaluate (`varreason evaluate --name vr-gml`"),
        ("data/models/mine", None),
    ],
)
def test_the_table_says_which_stage_writes_a_path(path, stage):
    from varreason.pipeline import writer_of

    got = writer_of(path)
    assert got == stage if stage is None else got.startswith(stage), got


def test_cli_defaults_are_the_dag_paths_of_the_other_options():
    from varreason.cli import build_parser, resolve_options

    def defaults(*argv):
        args = build_parser().parse_args(list(argv))
        return resolve_options(COMMANDS[args.command], args, {"sampling": {"shards": 3}})

    rft = defaults("baselines", "--kind", "rft")
    assert rft["out"] == P.BASELINE_MODEL.format(baseline="rft")
    assert rft["samples"] == [P.INITIAL_SAMPLES.format(shard=s) for s in range(3)]
    assert defaults("baselines", "--kind", "sft")["samples"] == []
    assert defaults("score", "--shard", "2")["out"] == P.SCORED_TRACES.format(shard=2)
    assert defaults("train-final", "--estimator", "acc")["final_set"] == P.FINAL_SET.format(estimator="acc")
    bench = defaults("evaluate-benchmark", "--name", "sft", "--benchmark", "aime24")
    assert bench["metrics"] == P.BENCH_METRICS.format(model="sft", benchmark="aime24")
    assert defaults("evaluate", "--name", "x", "--out", "mine.parquet")["out"] == "mine.parquet"

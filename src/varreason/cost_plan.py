"""``varreason plan``: what a run will cost before it starts, from params alone (no data, no model).

Per job-running stage of the main DAG: tokens to process, the rate used (tokens/s per GPU from
``throughput.yaml``, measured or estimated, keyed by GPU, model size class and kind of work),
GPU-hours, hours per job and how many attempts of the rule's ``runtime`` that is, and the SLURM
resources of each job (``launch.train_resources`` of params ``runtime`` / ``inference_resources``, with
the ``mem_mb`` and ``runtime`` of the rule's ``heavy()`` / ``heavy_train()`` call). Then a total.

Simplifications and assumptions (the printed plan lists the numeric ones, ``ASSUMPTIONS``):

- Lengths not in params are assumed: the prompt, the reference answer and the reference trace of a
  real dataset (of the embedded synthetic task: its prepared split's mean lengths). Every example
  of a training set (original, selected, RFT) is as long as the original's prompt + trace + answer.
- A generated sample runs to ``generation_fill`` of its token limit (1.0: to the limit, an upper
  bound); a prompt is counted once per sample (rollouts: once per trace, the M answers share it) at
  the generation rate, though prefill is faster than decoding.
- The rate of a kind of work does not depend on length, batch or backend (the table's entries say
  at which lengths they hold). A model's class is the smallest class at least its size (the size
  read from ``model.pretrained``'s name; the tiny model: the smallest class).
- A training job uses every GPU it holds (``accelerate launch``, one process per GPU; without
  ``runtime.accelerate_config``: one); a sampling, scoring, rollout or evaluation job holds and uses
  the GPUs of one vLLM engine (``vllm.tensor_parallel_size``; the hf backend: one). Throughput
  scales linearly with the GPUs used. ``runtime.gpus`` 0: one GPU per job.
- Benchmarks have their spec's question counts (LiveCodeBench: an assumed count for its window).
  The claims run (``snakemake claims``), prepare, import-model and report are not planned; queue
  waits, start-up, checkpoint writes and the light local rules (weights, build_final: 0 GPU-hours)
  cost nothing here.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml

from varreason import paths as P
from varreason.benchmarks import benchmark_settings
from varreason.io import InputError
from varreason.launch import inference_resources, train_resources

THROUGHPUT_TABLE = Path(__file__).with_name("throughput.yaml")
SYNTHETIC_SOURCES = ("synthetic", "synthetic-words")

# name -> (value, why); the lengths are in tokens of the run's tokenizer
ASSUMPTIONS: dict[str, tuple[float, str]] = {
    "prompt_tokens": (300, "the reasoner's prompt: the reasoning format's system turn (~90), chat tags, a question"),
    "answer_tokens": (500, "a reference answer (the solution section), also q's hint"),
    "trace_tokens": (5000, "a reference trace (the thinking section) of the dataset; not measured here"),
    "generation_fill": (1.0, "share of its token limit a generated sample reaches (1.0: all: an upper bound)"),
    "livecodebench_questions": (279, "LiveCodeBench problems in the evaluate.benchmarks window; not counted"),
}  # fmt: skip
SYNTHETIC_ASSUMPTIONS: dict[str, tuple[float, str]] = {
    "prompt_tokens": (10, "the embedded task's Q{question}T: 7.2 characters of question (its prepared split's mean)"),
    "answer_tokens": (3, "the delimiter and the answer's 2 characters"),
    "trace_tokens": (10, "the reference trace's mean length in the prepared split"),
}  # fmt: skip
BENCHMARK_QUESTIONS = {  # the counts in each spec's description (src/varreason/benchmarks.py)
    "math500": 500, "aime24": 30, "aime25": 30, "amc23": 40, "gpqa_diamond": 198, "olympiadbench": 675,
    "mmlu_pro": 12032, "humaneval": 164,
}  # fmt: skip
# (mem_mb, runtime minutes) of each rule's heavy() / heavy_train() call in workflow/rules/*.smk
# (tests/test_cost_plan.py reads the rules and fails when these drift)
RULE_RESOURCES = {
    "train_initial": (4000, 60), "train_posterior": (4000, 60), "train_final": (4000, 60), "baselines": (4000, 60),
    "sample_posterior": (4000, 60), "score": (4000, 60), "rollout": (4000, 60), "sample_initial": (4000, 60),
    "evaluate": (4000, 60), "evaluate_benchmark": (8000, 240),
}  # fmt: skip
TRAIN_RULES = ("train_initial", "train_posterior", "train_final", "baselines")
LOCAL_RULES = ("weights", "build_final")  # localrules in the Snakefile: no SLURM job
# workflow/profiles/slurm/config.yaml: `retries` and the `--signal=TERM@300` lead (an attempt trains until then)
PROFILE_RETRIES, SIGNAL_LEAD_MIN = 4, 5
HF_NOTE = (
    "sampling.backend is hf, which samples and scores in float32 on the CPU (modeling.load_model): the GPU rates "
    "are vLLM's and bf16's, so these rows are what the run would cost with sampling.backend vllm"
)


def load_throughput(path: Path = THROUGHPUT_TABLE) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """The throughput table: GPU -> model class -> kind -> {tokens_per_s, source}."""
    return yaml.safe_load(path.read_text())


def _billions(name: str) -> float | None:
    """A model's size in billions of parameters from its name: Qwen3-4B-Base 4.0, SmolLM2-135M 0.135."""
    m = re.search(r"(\d+(?:\.\d+)?)([bm])(?![a-z])", Path(name).name.lower())
    return None if m is None else float(m[1]) * (1.0 if m[2] == "b" else 1e-3)


def size_class(params: dict, classes: list[str]) -> str:
    """The table's class for the run's model: the smallest whose size (its name's, qwen3-4b: 4) is at least it."""
    by_size = sorted(classes, key=lambda c: _billions(c) or 0.0)
    pretrained = params["model"]["pretrained"]
    size = 0.0 if pretrained is None else _billions(str(pretrained))
    if size is None:
        raise InputError(
            f"model.pretrained {pretrained!r} names no size (e.g. 4B): pass --model-class ({', '.join(by_size)})"
        )
    fits = [c for c in by_size if (_billions(c) or 0.0) >= size]
    if not fits:
        raise InputError(
            f"model.pretrained {pretrained!r} is larger than every class of the table: {', '.join(by_size)}"
        )
    return fits[0]


def _rates(gpu: str, klass: str | None, params: dict) -> tuple[str, dict[str, dict[str, Any]]]:
    table = load_throughput()
    if gpu not in table:
        raise InputError(
            f"unknown GPU {gpu!r}; the throughput table ({THROUGHPUT_TABLE.name}) knows: {', '.join(table)}"
        )
    klass = klass or size_class(params, list(table[gpu]))
    if klass not in table[gpu]:
        raise InputError(f"unknown model class {klass!r} for {gpu}; known: {', '.join(table[gpu])}")
    return klass, table[gpu][klass]


def slurm_resources(rule: str, params: dict) -> dict[str, Any] | None:
    """What one job of ``rule`` asks SLURM for, as the rule declares it (None: a local rule, no job)."""
    if rule not in RULE_RESOURCES:
        return None
    mem_mb, minutes = RULE_RESOURCES[rule]
    runtime = params["runtime"]
    extra = train_resources(runtime) if rule in TRAIN_RULES else inference_resources(params)
    return {"mem_mb": mem_mb, "runtime": minutes, "threads": runtime["threads"], **extra}


def _gpus(rule: str, params: dict) -> tuple[int, int]:
    """(GPUs a job of ``rule`` holds, GPUs it computes on): see the module's assumptions."""
    runtime = params["runtime"]
    if rule in TRAIN_RULES:
        held = max(int(runtime["gpus"] or 0), 1) * int(runtime.get("nodes") or 1)
        return held, held if runtime.get("accelerate_config") else 1
    held = inference_resources(params).get("gpu", 1)  # its engine's GPUs (launch.py); none configured: one
    return held, held


def cost_plan(params: dict, gpu: str, model_class: str | None = None, assumptions: dict | None = None) -> list[dict]:
    """One row per job-running stage of the main DAG, and a last row ``total`` (see the module docstring).

    Each row: stage, rule, jobs, tokens, kind, tokens_per_s (per GPU), gpus_held / gpus_used (per
    job), gpu_hours (held: what the allocation is billed), hours_per_job, attempts (of the rule's
    runtime less the signal's lead), slurm (per job; None: a local rule), note. ``assumptions``
    replaces values of ``ASSUMPTIONS`` (name -> number). Raises InputError for an unknown GPU or class.
    """
    klass, rates = _rates(gpu, model_class, params)
    assumed = dict(ASSUMPTIONS)
    if params["task"]["source"] in SYNTHETIC_SOURCES:
        assumed |= SYNTHETIC_ASSUMPTIONS
    assumed |= {k: (v, "given") for k, v in (assumptions or {}).items()}
    a = {k: v for k, (v, _) in assumed.items()}
    fill, prompt, answer, trace = a["generation_fill"], a["prompt_tokens"], a["answer_tokens"], a["trace_tokens"]
    task, sampling, rollout, ev = params["task"], params["sampling"], params["rollout"], params["evaluate"]
    n, k, shards = task["n_train"], sampling["k"], sampling["shards"]
    q_prompt = prompt + answer if sampling["hint"] else prompt  # q's prompt shows the reference answer
    sampled = fill * sampling["max_trace_tokens"]
    example = prompt + trace + answer  # one training example
    models = list(P.EVAL_MODELS)
    rows: list[dict] = []

    def add(stage: str, rule: str, jobs: int, tokens: float, kind: str | None, note: str = "") -> None:
        held, on = _gpus(rule, params)
        rate = rates[kind]["tokens_per_s"] if kind else None
        hours_per_job = tokens / jobs / (rate * on) / 3600 if kind else 0.0
        res = slurm_resources(rule, params)
        usable = (res["runtime"] - SIGNAL_LEAD_MIN) / 60 if res else None
        attempts = max(1, math.ceil(hours_per_job / usable)) if usable else None
        notes = [note] if note else []
        if kind and on < held:
            notes.append(f"holds {held} GPUs, computes on {on}")
        if attempts and attempts > 1 + PROFILE_RETRIES:
            notes.append(f"over the profile's 1 + {PROFILE_RETRIES} attempts: raise its runtime (set-resources)")
        rows.append(
            dict(
                stage=stage, rule=rule, jobs=jobs, tokens=round(tokens), kind=kind, tokens_per_s=rate,
                gpus_held=held if kind else 0, gpus_used=on if kind else 0, hours_per_job=hours_per_job,
                gpu_hours=hours_per_job * jobs * held, attempts=attempts, slurm=res, note="; ".join(notes),
            )
        )  # fmt: skip

    ti, tp, tf = params["train_initial"], params["train_posterior"], params["train_final"]
    add("train_initial", "train_initial", 1, ti["steps"] * ti["batch_size"] * example, "train")
    add("train_posterior", "train_posterior", 1, tp["steps"] * tp["batch_size"] * (example + answer), "train")
    add("sample_posterior", "sample_posterior", shards, n * k * (q_prompt + sampled), "generate")
    recorded = params["scoring"]["posterior_from_samples"]  # q's log-probs recorded while sampling: no pass under q
    q_pass = 0 if recorded else q_prompt + sampled
    passes = "pi_0 only (q's log-probs recorded)" if recorded else "pi_0 and q"
    add("score", "score", shards, n * k * (prompt + sampled + answer + q_pass), "score", passes)
    if "acc" in P.ESTIMATORS:  # rollouts feed only the Acc estimator's weights (rollout_inputs in common.smk)
        answers = rollout["m"] * fill * rollout["max_answer_tokens"]
        add("rollout", "rollout", shards, n * k * (prompt + sampled + answers), "generate", f"M = {rollout['m']}")
    initial_limit = sampling["max_trace_tokens"] + rollout["max_answer_tokens"]
    add("sample_initial", "sample_initial", shards, n * k * (prompt + fill * initial_limit), "generate", "for RFT")
    for rule in LOCAL_RULES:
        add(f"{rule} ({', '.join(P.ESTIMATORS)})", rule, len(P.ESTIMATORS), 0, None, "local rule")
    final_tokens = tf["steps"] * tf["batch_size"] * example  # every arm: the same steps and batch (equal compute)
    for estimator in P.ESTIMATORS:
        add(f"train_final (vr-{estimator})", "train_final", 1, final_tokens, "train")
    for kind in P.BASELINES:
        add(f"baselines ({kind})", "baselines", 1, final_tokens, "train")
    per_model = task["n_test"] * (1 + ev["n_samples"]) * (prompt + fill * ev["max_new_tokens"])  # greedy + n
    add(f"evaluate ({len(models)} models)", "evaluate", len(models), per_model * len(models), "generate")
    for name, entry in ev["benchmarks"].items():
        _, spec = benchmark_settings(name, entry)
        questions = BENCHMARK_QUESTIONS.get(spec.name, a["livecodebench_questions"])
        tokens = questions * (1 + spec.n_samples) * (prompt + fill * spec.max_new_tokens) * len(models)
        note = f"{questions} questions x (greedy + {spec.n_samples})"
        add(
            f"evaluate_benchmark {spec.name} ({len(models)} models)",
            "evaluate_benchmark",
            len(models),
            tokens,
            "generate",
            note,
        )
    rows.append(
        dict(
            stage="total", rule=None, jobs=sum(r["jobs"] for r in rows), tokens=sum(r["tokens"] for r in rows),
            gpu_hours=sum(r["gpu_hours"] for r in rows), gpu=gpu, model_class=klass, assumptions=assumed,
            rates={kind: (rates[kind]["tokens_per_s"], rates[kind]["source"]) for kind in rates},
            notes=[] if sampling["backend"] == "vllm" else [HF_NOTE],
        )
    )  # fmt: skip
    return rows


def _hours(h: float) -> str:
    return "0" if h == 0 else f"{h:,.1f}" if h >= 0.1 else f"{h:.2g}"


def _resources(res: dict[str, Any] | None) -> str:
    return "local (submitting host)" if res is None else ", ".join(f"{k}={v}" for k, v in res.items())


def render_plan(rows: list[dict], gpu: str, params_path: str) -> str:
    """The plan as markdown: the table of ``cost_plan``'s rows, the total, the rates and assumptions used."""
    total = rows[-1]
    out = [
        f"# Cost plan: {params_path} on {gpu} ({total['model_class']} rates)",
        "",
        "| stage | jobs | tokens | work | tokens/s/GPU | GPUs held/used | GPU-h | h/job | attempts | SLURM per job "
        "| note |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows[:-1]:
        gpus = f"{r['gpus_held']}/{r['gpus_used']}" if r["kind"] else ""
        rate = f"{r['tokens_per_s']:,}" if r["kind"] else ""
        cells = [r["stage"], r["jobs"], f"{r['tokens']:,}", r["kind"] or "", rate, gpus, _hours(r["gpu_hours"])]
        cells += [_hours(r["hours_per_job"]), r["attempts"] or "", _resources(r["slurm"]), r["note"]]
        out.append("| " + " | ".join(str(c) for c in cells) + " |")
    out.append(
        f"| **total** | {total['jobs']} | {total['tokens']:,} | | | | **{_hours(total['gpu_hours'])}** | | | | |"
    )
    out += ["", f"Total: {_hours(total['gpu_hours'])} GPU-hours on {gpu}, {total['jobs']} jobs.", ""]
    out.append(f"Rates (tokens/s per GPU, src/varreason/{THROUGHPUT_TABLE.name}, {gpu} / {total['model_class']}):")
    out += [f"- {kind}: {rate:,}: {source}" for kind, (rate, source) in total["rates"].items()]
    out += ["", "Assumptions (src/varreason/cost_plan.py, where its docstring lists the rest):"]
    out += [f"- {name} = {value:g}: {why}" for name, (value, why) in total["assumptions"].items()]
    out += [
        f"- each job also gets the profile's default-resources (slurm_partition, slurm_extra --signal=TERM@300); "
        f"an attempt works its runtime less {SIGNAL_LEAD_MIN} min, and a job gets at most 1 + {PROFILE_RETRIES} "
        "(retries) attempts",
        "- generation counts prompt and new tokens at one rate; not included: the claims run, queue waits, start-up",
        *(f"- {note}" for note in total["notes"]),
    ]
    return "\n".join(out) + "\n"


def plan(params: dict, params_path: str, gpu: str = "h100-80gb", model_class: str | None = None) -> str:
    """``varreason plan``: the cost plan of the params file, printed as markdown."""
    return render_plan(cost_plan(params, gpu, model_class), gpu, params_path)

"""Whole-DAG check (issue 19): every pipeline stage in the reasoning format, timed, with MFU and peak memory.

    PYTHONPATH=src python bench/gpu_dag.py --size gpu --out /tmp/gpu_dag --json /tmp/gpu_dag.json  # one GPU
    .venv/bin/python bench/gpu_dag.py --size toy --out /tmp/toy_dag --json /tmp/toy_dag.json  # CPU smoke (tests)

Nothing is downloaded. In ``--out/run``: a byte-level BPE tokenizer with a ChatML template (the
reasoning tags span several tokens, as in Qwen3's; the vocabulary filled to 151936 ids), a
Bespoke-Stratos-layout task whose reference traces have 2k-8k tokens, a random-init Qwen3-0.6B
shape. The stage table's stages (``varreason.pipeline.STAGES``) run as library calls in DAG order
(params.yaml under the qwen3-4b-bespoke preset, reasoning format; transformers backend, 1 shard, 4
questions, K = 4 traces of 2048 tokens), then a Qwen3-4B shape scores traces of 2048 and 8192 tokens.
Per stage: tokens (training: every example of every step; sampling: generated; scoring: prompt +
completion of each pass; the others: what they wrote), wall seconds (model loading and saving
included, as in a DAG job), MFU (``_common.forward_flops`` of those tokens, training 3x, over the
measured matmul rate), peak memory (CUDA: max_memory_allocated; CPU: peak RSS so far). A random
model never writes the delimiter: sampled traces run to their limit.

Unlike a DAG job: training runs under accelerate's FSDP2 (workflow/accelerate/fsdp.yaml) with one
process, in this process: a bare ``Accelerator()`` is not FSDP, so what ``accelerate launch
--num_processes 1`` puts in its torchrun worker's environment (FSDP_* variables, RANK, WORLD_SIZE,
MASTER_*) is set first. The transformers backend puts sampling and scoring on the GPU in bf16 itself
(``modeling.inference_device``); ``--compile`` scores with fused decoder-body kernels
(``scoring.compile``).
"""

from __future__ import annotations

import argparse
import bisect
import datetime
import functools
import gc
import importlib.util
import json
import os
import platform
import resource
import shutil
import socket
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(1, str(REPO / "src"))  # PYTHONPATH=src without an install

import accelerate  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
import yaml  # noqa: E402
from _common import PRESETS, forward_flops, matmul_rate  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM  # noqa: E402

from varreason import backends, chunks  # noqa: E402
from varreason.pipeline import COMMANDS  # noqa: E402
from varreason.prompting import HINT_B_SYSTEM, REASONING_SYSTEM, prompter_for  # noqa: E402
from varreason.stages import train  # noqa: E402
from varreason.training import global_batch_indices  # noqa: E402

TOY = dict(num_attention_heads=4, num_key_value_heads=2, vocab_size=1024)
SIZES = {
    "toy": dict(
        dag=dict(**TOY, hidden_size=64, num_hidden_layers=2, head_dim=16, intermediate_size=192),
        large=dict(**TOY, hidden_size=96, num_hidden_layers=3, head_dim=24, intermediate_size=256),
        traces=(24, 96), sample_tokens=24, answer_tokens=8, n_train=4, n_test=2, k=2, rows=8,
        steps=2, batch=2, eval_samples=2, score_lengths=(64, 256), score_tokens=1024, max_positions=2048,
    ),
    "gpu": dict(
        dag=PRESETS["qwen3-0.6b"], large=PRESETS["qwen3-4b"],
        traces=(2048, 8192), sample_tokens=2048, answer_tokens=64, n_train=4, n_test=4, k=4, rows=16,
        steps=4, batch=8, eval_samples=2, score_lengths=(2048, 8192), score_tokens=65536, max_positions=40960,
    ),
}  # fmt: skip
PATHS = dict(  # under --out/run, where the DAG puts them (shard 0 of 1, estimator gml)
    train="data/prepared/train.parquet", test="data/prepared/test.parquet", base="base", large="large",
    init="data/models/initial", post="data/models/posterior", traces="data/traces/posterior/shard-0.parquet",
    scored="data/traces/scored/shard-0.parquet", weighted="data/traces/weighted-gml.parquet",
    wm="metrics/weights-gml.json", final_set="data/train/final-gml.parquet", fm="metrics/train-set-vr-gml.json",
    final="data/models/final-gml", samples="data/traces/initial/shard-0.parquet",
    rft_set="data/train/baseline-rft.parquet", rft_metrics="metrics/train-set-rft.json",
    rft_model="data/models/baseline-rft", ev="data/eval/vr-gml.parquet", em="metrics/eval/vr-gml.json",
)  # fmt: skip
# (row, command of the stage table, its options: a name in PATHS, a list of them, or a value); its outputs are
# the options the table says it writes
DAG = [
    ("prepare", "prepare", dict(train_out="train", test_out="test")),
    ("train_initial", "train-initial", dict(train="train", out="init", base="base")),
    ("train_posterior", "train-posterior", dict(train="train", initial="init", out="post")),
    ("sample_posterior", "sample-posterior", dict(train="train", posterior="post", shard=0, out="traces")),
    ("score", "score", dict(traces="traces", initial="init", posterior="post", out="scored")),
    ("weights", "weights", dict(estimator="gml", scored=["scored"], out="weighted", metrics="wm")),
    ("build_final", "build-final", dict(weights="weighted", train="train", initial="init", out="final_set",
                                        metrics="fm")),
    ("train_final", "train-final", dict(final_set="final_set", initial="init", out="final")),
    ("sample_initial", "sample-initial", dict(train="train", initial="init", shard=0, out="samples")),
    ("baselines_rft", "baselines", dict(kind="rft", train="train", samples=["samples"], initial="init",
                                        set_out="rft_set", set_metrics="rft_metrics", out="rft_model")),
    ("evaluate", "evaluate", dict(model="final", test="test", name="vr-gml", out="ev", metrics="em")),
]  # fmt: skip
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
METER = {"tokens": 0, "flops": 0.0}
HEADER = f"{'stage':20s} {'tokens':>10s} {'seconds':>9s} {'tokens/s':>11s} {'MFU':>6s} {'peak GiB':>9s}"


def thought(n: int) -> str:
    return "\n\n".join(f"Step {j}: adding {j} to {j * (j - 1) // 2} gives {j * (j + 1) // 2}." for j in range(1, n + 1))


def task_row(i: int, n: int, split: str) -> dict:
    """A Bespoke-Stratos row: add 1..n in order, one thought step per number."""
    reply = (
        f"<|begin_of_thought|>\n\n{thought(n)}\n\n<|end_of_thought|>\n\n<|begin_of_solution|>\n\n"
        f"The sum of 1 to {n} is \\boxed{{{n * (n + 1) // 2}}}.\n\n<|end_of_solution|>"
    )
    question = f"Problem {i}: add the numbers 1 to {n} one at a time and give the sum."
    turns = [{"from": "user", "value": question}, {"from": "assistant", "value": reply}]
    return {"conversations": turns, "split": split}


def build_tokenizer(vocab: int) -> PreTrainedTokenizerFast:
    texts = [t["value"] for i in range(30) for t in task_row(i, 40, "")["conversations"]]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer, tok.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=min(vocab // 2, 4000), special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # fmt: skip
    tok.train_from_iterator([REASONING_SYSTEM, HINT_B_SYSTEM, *texts], trainer)
    spec = json.loads(tok.to_str())
    words, i = spec["model"]["vocab"], 0
    while len(words) < vocab:  # ids no merge leads to: the model's other rows, decodable as text
        words.setdefault(f"~{i}", len(words))
        i += 1
    out = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(spec)), eos_token=SPECIALS[0])
    out.pad_token, out.padding_side, out.chat_template = SPECIALS[0], "left", CHATML
    assert len(out) == vocab, (len(out), vocab)
    return out


def write_task(path: Path, tok, size: dict) -> None:
    """n_train rows whose reference traces run evenly from traces[0] to traces[1] tokens, n_test short ones."""
    # the fewest steps whose thought has ``target`` tokens
    steps = lambda target: bisect.bisect_left(range(8192), target, key=lambda m: len(tok(thought(m)).input_ids))  # noqa: E731
    (a, b), n = size["traces"], size["n_train"]
    rows = [task_row(i, steps(a + (b - a) * i // max(n - 1, 1)), "train") for i in range(n)]
    rows += [task_row(n + i, 3 + i, "test") for i in range(size["n_test"])]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def save_model(path: Path, tok, shape: dict, size: dict, dev: str, dtype, seed: int) -> int:
    """A random-init Qwen3 of ``shape`` (tied embeddings) and ``tok``, saved in ``dtype``; its parameter count."""
    ids = dict(pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None)
    config = Qwen3Config(**shape, **ids, max_position_embeddings=size["max_positions"], tie_word_embeddings=True)
    torch.manual_seed(seed)
    with torch.device(dev):
        model = Qwen3ForCausalLM(config).to(dtype)
    n = sum(p.numel() for p in model.parameters())
    model.save_pretrained(path)
    tok.save_pretrained(path)
    del model
    free(dev)
    return n


def free(dev: str) -> None:
    gc.collect()
    if dev == "cuda":
        torch.cuda.empty_cache()


def merge(a: dict, b: dict) -> dict:
    return {**a, **{k: merge(a[k], v) if isinstance(a.get(k), dict) else v for k, v in b.items()}}


def build_params(work: Path, size: dict, cuda: bool) -> dict:
    """The preset's sections over params.yaml's (key by key; task.templates whole), then this size's
    values; validated where jsonschema is installed (the GPU image has none)."""
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    preset = yaml.safe_load((REPO / "workflow/presets/qwen3-4b-bespoke.yaml").read_text())
    params = {**base, **{k: {**base.get(k, {}), **v} if isinstance(v, dict) else v for k, v in preset.items()}}
    arm = dict(steps=size["steps"], batch_size=size["batch"], grad_accum_steps=size["batch"], warmup_frac=0.25)
    n, rows = size["eval_samples"], size["rows"]
    params = merge(params, {
        "runtime": dict(threads=os.cpu_count() or 1, gpus=int(cuda), nodes=1,
                        accelerate_config=str(REPO / "workflow/accelerate/fsdp.yaml") if cuda else None),
        "task": dict(source=str(work / "stratos.jsonl"), layout="stratos", n_train=size["n_train"],
                     n_test=size["n_test"], verifier="math" if importlib.util.find_spec("math_verify") else "exact"),
        "model": dict(pretrained=str(work / "base"), trainable_layers=None),
        "train_initial": arm, "train_posterior": arm, "train_final": arm,
        "sampling": dict(backend="hf", k=size["k"], max_trace_tokens=size["sample_tokens"], batch_size=rows, shards=1),
        "scoring": dict(posterior_from_samples=False),  # both passes, pi_0's and q's
        "rollout": dict(max_answer_tokens=size["answer_tokens"]),
        "evaluate": dict(benchmarks={}, n_samples=n, pass_k=[1, n], max_new_tokens=size["sample_tokens"],
                         batch_size=rows),
    })  # fmt: skip
    try:
        from varreason.params import validate_params
    except ImportError:
        return params
    return validate_params(params, "bench/gpu_dag.py params")


def fsdp_env(config: Path) -> dict[str, str]:
    """What ``accelerate launch --config_file CONFIG --num_processes 1`` puts in its one worker's environment:
    accelerate's variables from the config (FSDP2, bf16) and torchrun's rank, world size and rendezvous."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    argv = ["--config_file", str(config), "--num_processes", "1", "--main_process_port", port, "bench"]
    args = _validate_launch_command(launch_command_parser().parse_args(argv))[0]
    env = {k: v for k, v in prepare_multi_gpu_env(args).items() if k.startswith(("ACCELERATE_", "FSDP_"))}
    torchrun = dict(RANK="0", LOCAL_RANK="0", GROUP_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1")
    return env | torchrun | dict(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)


@functools.cache
def meta_model(model_dir) -> torch.nn.Module:
    """The model of ``model_dir`` on the meta device: its shape, for counting FLOPs."""
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir))


def instrument() -> None:
    """Count tokens and FLOPs (METER) where stages call models: ``chunks.generate`` and ``chunks.score`` (every
    sampling and scoring call), ``stages.train.train_sft`` (every training stage)."""
    gen, score, sft = chunks.generate, chunks.score, train.train_sft

    def generate(model_dir, request, **kw):
        samples = gen(model_dir, request, **kw)
        m, lengths = meta_model(model_dir), [len(p) for p in request.prompts]
        p = [lengths[s.prompt_index - request.prompt_offset] for s in samples]
        t = [len(s.token_ids) for s in samples]
        once = [lengths[i - request.prompt_offset] for i in sorted({s.prompt_index for s in samples})]
        # a prompt runs once (its samples share its KV cache), and each sample attends to it
        flops = forward_flops(m, [a + b for a, b in zip(p, t, strict=True)], t) - forward_flops(m, p, [0] * len(p))
        METER["tokens"] += sum(t)
        METER["flops"] += flops + forward_flops(m, once, [0] * len(once))
        return samples

    def score_(model_dir, prompts, completions, **kw):
        out = score(model_dir, prompts, completions, **kw)
        rows = [r for b in kw["batches"] for r in b] if kw.get("batches") is not None else range(len(prompts))
        n, c = [len(prompts[r]) + len(completions[r]) for r in rows], [len(completions[r]) for r in rows]
        METER["tokens"] += sum(n)
        METER["flops"] += forward_flops(meta_model(model_dir), n, c)
        return out

    def train_sft(model, examples, **kw):
        drawn = global_batch_indices(len(examples), kw["steps"], kw["batch_size"], kw["seed"]).flatten().tolist()
        n = [len(examples[i].prompt_ids) + len(examples[i].completion_ids) for i in drawn]
        METER["tokens"] += sum(n)
        METER["flops"] += 3 * forward_flops(model, n, n)  # forward + backward, logits at every position
        return sft(model, examples, **kw)

    chunks.generate, chunks.score, train.train_sft = generate, score_, train_sft


def run_stage(name: str, fn, outputs: list, dev: str, rate: float, work: Path, count=None) -> dict:
    """Time one stage call; its tokens and FLOPs from METER, or its tokens from ``count()`` (what it wrote)."""
    backends.release()  # a DAG job loads its own model
    free(dev)
    if dev == "cuda":
        torch.cuda.reset_peak_memory_stats()
    METER.update(tokens=0, flops=0.0)
    t = time.perf_counter()
    fn()
    if dev == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    if missing := [str(p) for p in outputs if not Path(p).exists()]:
        raise SystemExit(f"stage {name} did not write {missing}")
    tokens, flops = int(count() if count else METER["tokens"]), METER["flops"]
    # ru_maxrss is in KiB
    peak = torch.cuda.max_memory_allocated() if dev == "cuda" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    row = dict(stage=name, tokens=tokens, seconds=seconds, tokens_per_s=tokens / seconds, flops=flops,
               mfu=flops / seconds / rate if flops else None, peak_gib=peak / (2**30 if dev == "cuda" else 2**20),
               outputs=[str(Path(p).relative_to(work)) for p in outputs])  # fmt: skip
    print(f"  {line(row)}", flush=True)
    return row


def line(r: dict) -> str:
    mfu, s = f"{r['mfu']:6.1%}" if r["mfu"] is not None else f"{'-':>6s}", r["seconds"]
    return f"{r['stage']:20s} {r['tokens']:>10d} {s:9.1f} {r['tokens_per_s']:11.0f} {mfu} {r['peak_gib']:9.2f}"


def large_traces(path: Path, prepared: Path, tok, params: dict, length: int, total: int, seed: int) -> None:
    """Posterior traces of ``length`` tokens (random ids, then the delimiter), ``total`` tokens in all."""
    q, df = prompter_for(params, tok), pd.read_parquet(prepared)
    g, end = torch.Generator().manual_seed(seed), q.encode(q.fmt.answer_delimiter)
    rows = []
    for r in range(max(1, total // length)):
        x = df.iloc[r % len(df)]
        ids = torch.randint(len(tok), (length - len(end),), generator=g).tolist() + end
        prompt = q.posterior(x["question"], x["answer"])
        rows.append(dict(x[["question_id", "question", "answer", "gold"]], sample_index=r // len(df), prompt=prompt,
                         trace="", trace_token_ids=ids, finish_reason="stop", prompt_length=len(q.encode(prompt)),
                         trace_length=length, sample_logps=[0.0] * length))  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(path)


def cpu_name() -> str:
    info = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    cpu = [x.split(":", 1)[1].strip() for x in info if x.startswith("model name")] or [platform.processor() or "cpu"]
    return f"{cpu[0]} ({os.cpu_count()} CPUs, {torch.get_num_threads()} threads)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="gpu")
    ap.add_argument("--out", required=True, help="work folder (its run/ is replaced)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--sample-tokens", type=int, help="tokens per sampled trace and evaluation answer (gpu: 2048)")
    ap.add_argument("--compile", action="store_true", help="score the large model again with scoring.compile")
    args = ap.parse_args()
    size, cuda = dict(SIZES[args.size]), args.size == "gpu"
    size["sample_tokens"] = args.sample_tokens or size["sample_tokens"]
    if cuda and not torch.cuda.is_available():
        raise SystemExit("--size gpu needs a CUDA GPU (torch.cuda.is_available() is False); use --size toy")
    transformers.utils.logging.disable_progress_bar()  # "Loading weights"; the stages' own bars stay
    dev, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    t0 = time.perf_counter()
    work = Path(args.out).resolve() / "run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    versions = dict(torch=torch.__version__, transformers=transformers.__version__, accelerate=accelerate.__version__)
    name = torch.cuda.get_device_name() if cuda else cpu_name()
    print(f"{name}; " + ", ".join(f"{k} {v}" for k, v in versions.items()) + f", python {platform.python_version()}")
    rate = matmul_rate(dev, dtype, n=8192 if cuda else 512, repeats=10 if cuda else 20)
    print(f"measured {str(dtype)[6:]} matmul rate: {rate / 1e12:.3g} TFLOP/s", flush=True)
    tok = build_tokenizer(size["dag"]["vocab_size"])
    write_task(work / "stratos.jsonl", tok, size)
    n_dag = save_model(work / "base", tok, size["dag"], size, dev, dtype, seed=0)
    params = build_params(work, size, cuda)
    instrument()
    env = fsdp_env(REPO / "workflow/accelerate/fsdp.yaml")
    if cuda:  # accelerate makes FSDP only in a distributed GPU run: with torchrun's variables present
        os.environ.update(env)
    training = "accelerate FSDP2 (fsdp.yaml), 1 process, in-process" if cuda else "accelerate, 1 CPU process, no FSDP"
    print(f"model: {n_dag / 1e6:.1f}M parameters (random init, {str(dtype)[6:]}); training: {training}")
    print(f"setup {time.perf_counter() - t0:.1f} s\n\n{HEADER}", flush=True)

    p = {k: work / v for k, v in PATHS.items()}

    def tokens_of(path: Path, *columns: str):
        return lambda: sum(int(pd.read_parquet(path)[c].map(len).sum()) for c in columns)

    def prepared_tokens() -> int:
        text = pd.concat([pd.read_parquet(p["train"]), pd.read_parquet(p["test"])]).fillna("")
        return sum(len(tok(x).input_ids) for x in text["question"] + text["trace"] + text["answer"])

    # the stages that run no model: their tokens are those of what they wrote
    counts = dict(prepare=prepared_tokens, weights=tokens_of(p["weighted"], "prior_logps", "answer_logps"),
                  build_final=tokens_of(p["final_set"], "completion_token_ids"))  # fmt: skip

    def stage(row: str, command: str, options: dict) -> dict:
        c = COMMANDS[command]
        kw = {k: [p[x] for x in v] if isinstance(v, list) else p.get(v, v) for k, v in options.items()}
        outputs = [kw[w] for w in c.writes]
        return run_stage(row, lambda: c.load()(params, **kw), outputs, dev, rate, work, counts.get(row))

    rows = [stage(*s) for s in DAG]
    t = time.perf_counter()
    n_large = save_model(p["large"], tok, size["large"], size, dev, dtype, seed=1)
    print(f"  (large model: {n_large / 1e6:.1f}M parameters, saved in {time.perf_counter() - t:.1f} s)", flush=True)
    for n in size["score_lengths"]:  # pi_0 and q both the large model, on long traces
        p[f"t{n}"], p[f"s{n}"] = work / f"data/traces/large/{n}.parquet", work / f"data/traces/large/scored-{n}.parquet"
        large_traces(p[f"t{n}"], p["train"], tok, params, n, size["score_tokens"], seed=n)
        rows.append(stage(f"score_large_{n}", "score", dict(traces=f"t{n}", initial="large", posterior="large",
                                                            out=f"s{n}")))  # fmt: skip
    if args.compile:  # the same scoring with fused decoder-body kernels (scoring.compile)
        params["scoring"]["compile"] = True
        for n in size["score_lengths"]:
            p[f"f{n}"] = work / f"data/traces/large/fused-{n}.parquet"
            rows.append(stage(f"score_large_{n}_fused", "score", dict(traces=f"t{n}", initial="large",
                                                                      posterior="large", out=f"f{n}")))  # fmt: skip
    total = time.perf_counter() - t0

    what = "bf16" if cuda else "float32 (on a CPU: a smoke value)"
    print(f"\n=== {name}: whole DAG, {args.size} size, {n_dag / 1e6:.1f}M + {n_large / 1e6:.1f}M-parameter random "
          f"Qwen3s; MFU against the measured {what} matmul rate, {rate / 1e12:.3g} TFLOP/s ===\n{HEADER}")  # fmt: skip
    print("\n".join(line(r) for r in rows) + f"\ntotal {total:.0f} s (setup included)")
    result = dict(
        date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), device=name, **versions,
        python=platform.python_version(), size=args.size, training=training, fsdp_env=env, matmul_flops=rate,
        matmul_dtype=str(dtype), parameters=dict(dag=n_dag, large=n_large), shapes=dict(dag=size["dag"],
        large=size["large"]), sample_tokens=size["sample_tokens"], k=size["k"], rows_per_generate=size["rows"],
        verifier=params["task"]["verifier"], total_seconds=total, stages=rows,
    )  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()

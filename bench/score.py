"""Scoring benchmark (issue 9): our scorer against the reference style, same model and data, one run.

    .venv/bin/python bench/score.py                       # everything below, ~5 minutes on 2 cores
    .venv/bin/python bench/score.py --preset embedded     # the pipeline's tiny model instead
    .venv/bin/python bench/score.py --skip-memory --skip-sampling

1. Throughput at ``--length`` tokens (default 512; a quarter prompt, the rest completion): our
   ``varreason.logprobs.score_completions`` (token-budget batches sorted by length, the output layer
   only at completion positions, gather minus logsumexp in chunks) against the reference style
   (batch 1, the model's full logits, a float32 log_softmax over the whole sequence), on one
   random-weight Qwen3 (``--preset``, default Qwen3-0.6B's width and 151936-token vocabulary with 4
   layers) and the same random token ids. Prints tokens/s of each, the ratio, the achieved FLOP rate
   as a fraction of the machine's measured float32 matmul rate (the model's forward FLOPs that
   scoring needs: ``_common.forward_flops``), and the largest log-prob difference (must be <= 1e-5).
   Each scorer runs ``--repeats`` times, interleaved; the fastest run counts (the machine is shared).
2. Peak memory at each of ``--memory-lengths`` (default 512 and 4096) with the same batch token
   budget (``--budget``, also the data size), each scorer in a fresh child process: the resident
   set's peak (VmHWM, reset through /proc/self/clear_refs after the model and data exist) minus the
   resident set at that moment.
3. Sampling with recorded log-probs (``scoring.posterior_from_samples``): with the pipeline's own
   q and pi_0 (``--pipeline-dir``, made by ``make run``), samples K traces for ``--questions``
   training questions as the sample_posterior stage does, then times the two scoring passes of the
   score stage (pi_0 and q, teacher-forced) and compares the log q recorded while sampling with q's
   teacher-forced pass (must agree within 1e-5). The saving is q's pass.
4. vLLM as the peer (``--peer``; needs vllm, so run it with ``.venv-vllm/bin/python``): a real
   pretrained model (``--peer-model``, default SmolLM2-135M-Instruct imported into external/ by
   ``make test`` or ``scripts/fetch-real-material.sh smollm2`` + ``varreason import-model``), float32,
   ``--peer-rows`` random sequences of ``--peer-prompt`` + ``--peer-completion`` tokens: our scorer,
   the reference style and vLLM's prompt log-probs (``vllm_backend.vllm_score``, its engine started
   once beforehand), interleaved, the fastest of ``--repeats`` each; prints tokens/s, our speed as a
   multiple of vLLM's (target >= 1.0x) and the largest log-prob difference from vLLM. ``--profile``
   adds the torch profiler's table of where our scorer's time goes (and the page faults of a call).

Set ``--threads`` to the cores to use (default 2); the load average is printed before and after,
since other work on the machine slows every number down.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch
from _common import (
    PRESETS,
    build_model,
    forward_flops,
    load_average,
    make_data,
    matmul_rate,
    max_abs_diff,
    reference_scores,
    timed,
)

from varreason.logprobs import score_completions

REPO = Path(__file__).resolve().parents[1]
TOL = 1e-5


def ours(model, prompts, completions, budget, pad_id=0):
    return score_completions(model, prompts, completions, pad_id, batch_size=4096, max_batch_tokens=budget, desc=None)


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def child_memory(args) -> None:
    """One scorer at one length in this (fresh) process; prints a JSON line with its peak memory."""
    torch.set_num_threads(args.threads)
    model = build_model(args.preset, max(args.memory_lengths) + 8)
    rows = max(1, args.budget // args.length)
    prompts, completions = make_data(model.config.vocab_size, rows, args.length, args.prompt_frac, seed=1)
    run = {
        "ours": lambda p, c: ours(model, p, c, args.budget),
        "reference": lambda p, c: reference_scores(model, p, c),
    }[args.child]
    run([[2, 3, 4]], [[5, 6]])  # load the kernels outside the measurement
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    base = _status_mb("VmRSS")
    _, s = timed(lambda: run(prompts, completions))
    print(json.dumps({"peak_mb": _status_mb("VmHWM") - base, "seconds": s, "rows": rows}))


def memory(args) -> dict:
    out = {}
    for length in args.memory_lengths:
        for scorer in ("ours", "reference"):
            cmd = [sys.executable, __file__, "--child", scorer, "--length", str(length)]
            cmd += ["--preset", args.preset, "--budget", str(args.budget), "--threads", str(args.threads)]
            cmd += ["--prompt-frac", str(args.prompt_frac), "--memory-lengths", *map(str, args.memory_lengths)]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit(f"memory child {scorer} @ {length} failed:\n{r.stderr[-3000:]}")
            out[(scorer, length)] = json.loads(r.stdout.strip().splitlines()[-1])
            print(f"  {scorer:9s} {length:5d} tokens: peak +{out[(scorer, length)]['peak_mb']:.0f} MB", flush=True)
    return out


def throughput(args) -> dict:
    model = build_model(args.preset, max(args.length, *args.memory_lengths) + 8)
    rows = max(1, args.tokens // args.length)
    prompts, completions = make_data(model.config.vocab_size, rows, args.length, args.prompt_frac)
    tokens = rows * args.length
    flops = forward_flops(model, [args.length] * rows, [len(c) for c in completions])
    ours(model, prompts[:1], completions[:1], args.budget)  # warm-up
    reference_scores(model, prompts[:1], completions[:1])
    t_ours, t_ref = [], []
    for _ in range(args.repeats):
        a, s = timed(lambda: ours(model, prompts, completions, args.budget))
        t_ours.append(s)
        b, s = timed(lambda: reference_scores(model, prompts, completions))
        t_ref.append(s)
        print(f"  run: ours {t_ours[-1]:.2f} s, reference {t_ref[-1]:.2f} s", flush=True)
    return dict(
        rows=rows,
        tokens=tokens,
        flops=flops,
        ours_s=min(t_ours),
        ref_s=min(t_ref),
        diff=max_abs_diff(a, b),
        params=sum(p.numel() for p in model.parameters()),
    )


def sampling(args) -> dict | None:
    from varreason.backends import generate
    from varreason.generation import SamplingRequest
    from varreason.modeling import load_model
    from varreason.params import load_params
    from varreason.prompting import prompter_for

    root = Path(args.pipeline_dir)
    q_dir, pi_dir = root / "data/models/posterior", root / "data/models/initial"
    train = root / "data/prepared/train.parquet"
    if not (q_dir.is_dir() and pi_dir.is_dir() and train.exists()):
        print(f"  skipped: {q_dir}, {pi_dir} or {train} missing (run `make run` first)")
        return None
    import pandas as pd

    params = load_params(root / "params.yaml")
    cfg = params["sampling"]
    df = pd.read_parquet(train).head(args.questions)
    q_model, q_tok = load_model(q_dir)
    pi_model, pi_tok = load_model(pi_dir)
    q, pi = prompter_for(params, q_tok), prompter_for(params, pi_tok)
    prompts = [q.encode(q.posterior(a, b)) for a, b in zip(df["question"], df["answer"], strict=True)]
    stop_ids = list(q.stop_ids) + ([q.delimiter_id] if q.delimiter_id is not None else [])
    stop_strings = [] if q.delimiter_id is not None else [q.fmt.answer_delimiter]
    request = SamplingRequest(
        prompts=prompts,
        stop_ids=stop_ids,
        stop_strings=stop_strings,
        num_samples=cfg["k"],
        max_new_tokens=cfg["max_trace_tokens"],
        temperature=cfg["temperature"],
        seed=0,
        batch_size=cfg["batch_size"],
        desc="sample q",
    )
    samples, t_sample = timed(lambda: generate(q_dir, request, backend="hf", tokenizer=q_tok))
    traces = [s.token_ids for s in samples]
    q_prompts = [prompts[s.prompt_index] for s in samples]
    answers = [pi.encode(pi.answer_text(a)) for a in df["answer"]]
    pi_prompts = [pi.encode(pi.reasoner(df["question"].iloc[s.prompt_index])) for s in samples]
    pi_completions = [t + answers[s.prompt_index] for t, s in zip(traces, samples, strict=True)]
    bs = params["scoring"]["batch_size"]
    _, t_pi = timed(lambda: score_completions(pi_model, pi_prompts, pi_completions, pi_tok.pad_token_id, bs))
    forced, t_q = timed(lambda: score_completions(q_model, q_prompts, traces, q_tok.pad_token_id, bs))
    recorded = [s.logps for s in samples]
    exact = float64_scores(q_model, q_prompts, traces)
    return dict(
        traces=len(samples),
        tokens=sum(map(len, traces)),
        sample_s=t_sample,
        pi_s=t_pi,
        q_s=t_q,
        diff=max_abs_diff(recorded, forced),
        recorded_vs_float64=max_abs_diff(recorded, exact),
        forced_vs_float64=max_abs_diff(forced, exact),
    )


@torch.no_grad()
def float64_scores(model, prompts, completions, batch: int = 256):
    """The exact values to within float64 rounding: a float64 copy of the model, full log_softmax."""
    import copy

    from varreason.logprobs import pad_batch

    m = copy.deepcopy(model).double()
    out = []
    for s in range(0, len(prompts), batch):
        rows = [list(p) + list(c) for p, c in zip(prompts[s : s + batch], completions[s : s + batch], strict=True)]
        ids, mask = pad_batch(rows, 0, "right")
        logp = torch.log_softmax(m(input_ids=ids, attention_mask=mask).logits.double()[:, :-1], -1)
        picked = logp.gather(-1, ids[:, 1:, None]).squeeze(-1)
        for i, (p, c) in enumerate(zip(prompts[s : s + batch], completions[s : s + batch], strict=True)):
            out.append(picked[i, len(p) - 1 : len(p) - 1 + len(c)].tolist())
    return out


def peer(args) -> dict | None:
    """Item 4: ours, the reference style and vLLM on one real model and the same sequences."""
    try:
        import vllm  # noqa: F401
    except ImportError:
        print("  skipped: vllm is not installed here (run this with .venv-vllm/bin/python: scripts/setup-vllm-venv.sh)")
        return None
    from varreason.modeling import load_model
    from varreason.vllm_backend import shutdown_engines, vllm_score

    model_dir = Path(args.peer_model)
    if not (model_dir / "config.json").exists():
        print(f"  skipped: {model_dir} is not a model folder (make test imports SmolLM2-135M-Instruct there)")
        return None
    model, tok = load_model(model_dir)
    length = args.peer_prompt + args.peer_completion
    prompts, completions = make_data(model.config.vocab_size, args.peer_rows, length, args.peer_prompt / length)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    _, engine_s = timed(lambda: vllm_score(model_dir, prompts[:1], completions[:1], desc=None))
    print(f"  vLLM engine started in {engine_s:.0f} s", flush=True)
    ours(model, prompts[:1], completions[:1], args.budget)
    runs = {"ours": lambda: ours(model, prompts, completions, args.budget, pad)}
    runs["reference"] = lambda: reference_scores(model, prompts, completions)
    runs["vllm"] = lambda: vllm_score(model_dir, prompts, completions, desc=None)
    best, scores = {k: float("inf") for k in runs}, {}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            scores[name], s = timed(fn)
            best[name] = min(best[name], s)
        print("  run: " + ", ".join(f"{k} {v:.2f} s" for k, v in best.items()), flush=True)
    shutdown_engines()
    out = dict(model=str(model_dir), rows=args.peer_rows, tokens=args.peer_rows * length, seconds=best)
    out.update(
        vs_vllm=max_abs_diff(scores["ours"], scores["vllm"]), vs_ref=max_abs_diff(scores["ours"], scores["reference"])
    )
    if args.profile:
        out["profile"] = profile_ours(lambda: ours(model, prompts, completions, args.budget, pad))
    return out


def profile_ours(fn) -> str:
    """Where our scorer's time goes: the profiler's top operators, and the call's page faults and system time."""
    import resource

    from torch.profiler import ProfilerActivity, profile

    before = resource.getrusage(resource.RUSAGE_SELF)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    after = resource.getrusage(resource.RUSAGE_SELF)
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)
    faults, system = after.ru_minflt - before.ru_minflt, after.ru_stime - before.ru_stime
    return (
        f"{table}\npage faults {faults}, system time {system:.2f} s, user time {after.ru_utime - before.ru_utime:.2f} s"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--preset", default="qwen3-0.6b-4l", choices=[p for p in PRESETS if p != "qwen3-0.6b"])
    ap.add_argument("--length", type=int, default=512, help="tokens per sequence for the throughput test")
    ap.add_argument("--tokens", type=int, default=8192, help="tokens scored per throughput run")
    ap.add_argument("--budget", type=int, default=4096, help="our scorer's batch token budget (max_batch_tokens)")
    ap.add_argument("--prompt-frac", type=float, default=0.25, help="share of each sequence that is prompt")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--memory-lengths", type=int, nargs="+", default=[512, 4096])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pipeline-dir", default=str(REPO), help="a folder where `make run` ran (item 3)")
    ap.add_argument("--questions", type=int, default=256, help="questions sampled for item 3 (K traces each)")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-sampling", action="store_true")
    ap.add_argument("--peer", action="store_true", help="item 4: vLLM's prompt log-probs beside ours (needs vllm)")
    ap.add_argument("--peer-model", default=str(REPO / "external/SmolLM2-135M-Instruct"), help="item 4's model folder")
    ap.add_argument("--peer-rows", type=int, default=24)
    ap.add_argument("--peer-prompt", type=int, default=64, help="prompt tokens per row in item 4")
    ap.add_argument("--peer-completion", type=int, default=192, help="completion tokens per row in item 4")
    ap.add_argument("--profile", action="store_true", help="item 4: print where our scorer's time goes")
    ap.add_argument("--child", choices=["ours", "reference"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child_memory(args)

    torch.set_num_threads(args.threads)
    print(f"bench/score.py: preset {args.preset}, {args.threads} threads, load average {load_average():.2f}")
    rate = matmul_rate()
    print(f"measured float32 matmul rate: {rate / 1e9:.0f} GFLOP/s (2048^3, best of 8)", flush=True)

    results: dict = {"matmul_flops": rate}
    t = None
    if not args.skip_throughput:
        print(f"\n[1] throughput at {args.length} tokens ({args.prompt_frac:.0%} prompt), {args.tokens} tokens per run")
        t = throughput(args)
        rate = max(rate, matmul_rate())  # again after the runs: the better of the two is the machine's rate
        results.update(throughput=t, matmul_flops=rate)

    m = None
    if not args.skip_memory:
        print(f"\n[2] peak memory, batch token budget {args.budget} (fresh process each)", flush=True)
        m = memory(args)
        results["memory"] = {f"{k[0]}@{k[1]}": v for k, v in m.items()}

    smp = None
    if not args.skip_sampling:
        print(f"\n[3] sampling with recorded log q ({args.questions} questions, {args.pipeline_dir})", flush=True)
        smp = sampling(args)
        results["sampling"] = smp

    pr = None
    if args.peer:
        print(
            f"\n[4] vLLM as the peer: {args.peer_rows} x ({args.peer_prompt} + {args.peer_completion}) tokens",
            flush=True,
        )
        pr = peer(args)
        results["peer"] = pr and {k: v for k, v in pr.items() if k != "profile"}  # the table is printed, not kept

    print(f"\n=== results (preset {args.preset}; load average now {load_average():.2f}) ===")
    print(f"machine float32 matmul rate        {rate / 1e9:.0f} GFLOP/s")
    if t:
        tps_ours, tps_ref = t["tokens"] / t["ours_s"], t["tokens"] / t["ref_s"]
        mfu_ours, mfu_ref = t["flops"] / t["ours_s"] / rate, t["flops"] / t["ref_s"] / rate
        print(f"model parameters                   {t['params'] / 1e6:.0f}M")
        print(f"tokens per run                     {t['tokens']} ({t['rows']} x {args.length})")
        print(f"ours       tokens/s                {tps_ours:.0f}   ({mfu_ours:.0%} of the matmul rate)")
        print(f"reference  tokens/s                {tps_ref:.0f}   ({mfu_ref:.0%} of the matmul rate)")
        speedup = tps_ours / tps_ref
        print(f"speed-up (target >= 3x)            {speedup:.2f}x  {'met' if speedup >= 3 else 'MISSED'}")
        print(f"fraction of matmul rate (>= 70%)   {mfu_ours:.0%}  {'met' if mfu_ours >= 0.7 else 'MISSED'}")
        ok = t["diff"] <= TOL
        print(f"max |ours - reference| log-prob    {t['diff']:.2e}  {'<= 1e-5' if ok else 'EXCEEDS 1e-5'}")
    if m:
        lo, hi = min(args.memory_lengths), max(args.memory_lengths)
        for scorer in ("ours", "reference"):
            row = "  ".join(f"{n}: {m[(scorer, n)]['peak_mb']:.0f} MB" for n in args.memory_lengths)
            growth = m[(scorer, hi)]["peak_mb"] / m[(scorer, lo)]["peak_mb"]
            print(f"peak memory {scorer:9s}              {row}  ({growth:.2f}x)")
        ratio = m[("ours", hi)]["peak_mb"] / m[("ours", lo)]["peak_mb"]
        print(f"ours {hi} vs {lo} (target <= 1.2x)  {ratio:.2f}x  {'met' if ratio <= 1.2 else 'MISSED'}")
    if smp:
        full = smp["sample_s"] + smp["pi_s"] + smp["q_s"]
        print(f"sampling: {smp['traces']} traces, {smp['tokens']} tokens: sample {smp['sample_s']:.1f} s,")
        print(f"  score pi_0 {smp['pi_s']:.1f} s, score q {smp['q_s']:.1f} s: posterior_from_samples saves")
        print(f"  {smp['q_s']:.1f} s of {full:.1f} s (sample + score), {smp['q_s'] / full:.0%}")
        ok = smp["diff"] <= TOL
        print(f"max |recorded - teacher-forced|    {smp['diff']:.2e}  {'<= 1e-5' if ok else 'EXCEEDS 1e-5'}")
        print(
            f"  against float64: recorded {smp['recorded_vs_float64']:.2e}, "
            f"teacher-forced float32 {smp['forced_vs_float64']:.2e}"
        )
    if pr:
        sec = pr["seconds"]
        print(f"peer model {pr['model']}, {pr['tokens']} tokens (float32, {args.threads} threads)")
        for name in ("ours", "reference", "vllm"):
            print(f"  {name:9s} tokens/s              {pr['tokens'] / sec[name]:.0f}")
        ratio = sec["vllm"] / sec["ours"]
        print(f"ours / vLLM speed (target >= 1.0x)  {ratio:.2f}x  {'met' if ratio >= 1.0 else 'MISSED'}")
        print(f"ours / reference speed             {sec['reference'] / sec['ours']:.2f}x")
        print(f"max |ours - vLLM| log-prob         {pr['vs_vllm']:.2e} (|ours - reference| {pr['vs_ref']:.2e})")
        if pr.get("profile"):
            print(f"where our scorer's time goes (one call):\n{pr['profile']}")
    print(json.dumps(results, default=str))


if __name__ == "__main__":
    main()

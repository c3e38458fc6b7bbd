"""GPU scoring benchmark (issue 9): throughput and MFU of our scorer on a ~0.6B Qwen3, 2k and 8k tokens.

    PYTHONPATH=src python bench/gpu_score.py              # one CUDA GPU, about 2 minutes, no network
    PYTHONPATH=src python bench/gpu_score.py --lengths 2048 --tokens 32768

Builds Qwen3-0.6B's shape (28 layers, width 1024, 151936-token vocabulary, tied embeddings; 0.6B
parameters) with random weights in bfloat16 on the GPU (nothing downloaded), measures the GPU's
bf16 matmul rate (8192^3 products), then at each length scores ``--tokens`` random tokens (a
quarter prompt) with ``varreason.logprobs.score_completions`` (batch token budget ``--budget``),
the same with the decoder body compiled (``compile_body=True``: fused kernels, "fused") and with
the reference style (batch 1, full float32 log_softmax), and prints tokens/s, the
achieved FLOP rate over the measured matmul rate (MFU; the forward FLOPs that scoring needs, as in
``_common.forward_flops``), peak GPU memory above the model's, and the largest difference between
the two scorers' log-probs (bf16 weights: a few 1e-2 is rounding, not a bug).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
from _common import build_model, forward_flops, make_data, matmul_rate, max_abs_diff, reference_scores, timed

from varreason.logprobs import score_completions


def profile(model, args, dev: str) -> None:
    """GPU time of one token-budget batch of our scorer at the first length, by kind of kernel."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    length = args.lengths[0]
    prompts, completions = make_data(model.config.vocab_size, max(1, args.budget // length), length, args.prompt_frac)
    run = lambda: score_completions(model, prompts, completions, 0, batch_size=4096, max_batch_tokens=args.budget)  # noqa: E731
    run()
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.startswith("cuda") else [])
    with torch_profile(activities=acts, acc_events=True) as prof:
        _, wall = timed(run, dev)
    kinds = {"matmul": 0.0, "attention": 0.0, "other kernels": 0.0}
    for e in prof.key_averages():
        t = e.self_device_time_total if e.device_type == DeviceType.CUDA else 0.0
        if t <= 0 or e.key.startswith(("Memcpy", "Memset")):
            continue
        k = e.key.lower()
        kind = (
            "attention"
            if any(x in k for x in ("flash", "fmha", "sdpa", "attention"))
            else ("matmul" if any(x in k for x in ("gemm", "xmma", "cutlass", "cublas", "nvjet")) else "other kernels")
        )
        kinds[kind] += t / 1e6
    busy = sum(kinds.values())
    print(f"\nprofile: one batch of {len(prompts)} x {length} tokens, {wall * 1e3:.0f} ms wall")
    for kind, s in kinds.items():
        print(f"  {kind:14s} {s * 1e3:8.1f} ms  {s / wall:5.0%} of the wall time")
    print(f"  GPU idle       {(wall - busy) * 1e3:8.1f} ms  {(wall - busy) / wall:5.0%}")
    sort = "self_device_time_total" if dev.startswith("cuda") else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=sort, row_limit=12, max_name_column_width=60))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[2048, 8192])
    ap.add_argument("--tokens", type=int, default=65536, help="tokens scored per run at each length")
    ap.add_argument("--budget", type=int, default=32768, help="our scorer's batch token budget")
    ap.add_argument("--prompt-frac", type=float, default=0.25)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--preset", default="qwen3-0.6b")
    ap.add_argument("--no-reference", action="store_true", help="time our scorer only")
    ap.add_argument("--no-fused", action="store_true", help="leave out our scorer with compile_body (torch.compile)")
    ap.add_argument("--profile", action="store_true", help="also: where one batch of ours spends GPU time")
    ap.add_argument("--device", default="cuda", help="cpu: a smoke test of this script (with --preset embedded)")
    args = ap.parse_args()
    dev = args.device
    cuda = dev.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise SystemExit("bench/gpu_score.py needs a CUDA GPU (torch.cuda.is_available() is False)")
    import transformers

    name = torch.cuda.get_device_name() if cuda else platform.processor() or "cpu"
    mem = torch.cuda.memory_allocated if cuda else (lambda: 0)
    versions = f"torch {torch.__version__}, transformers {transformers.__version__}"
    print(f"{name}; {versions}, python {platform.python_version()}")
    t0 = time.perf_counter()
    rate = matmul_rate(dev, torch.bfloat16, n=8192 if cuda else 512, repeats=10)
    print(f"measured bf16 matmul rate: {rate / 1e12:.0f} TFLOP/s (8192^3, best of 10)", flush=True)
    model = build_model(args.preset, max(args.lengths) + 8, device=dev, dtype=torch.bfloat16)
    params = sum(p.numel() for p in model.parameters())
    print(f"model {args.preset}: {params / 1e9:.2f}B parameters, bf16, sdpa attention", flush=True)
    base = mem()
    rows_out = []
    for length in args.lengths:
        rows = max(1, args.tokens // length)
        prompts, completions = make_data(model.config.vocab_size, rows, length, args.prompt_frac)
        flops = forward_flops(model, [length] * rows, [len(c) for c in completions])
        scorers = {
            "ours": lambda p, c: score_completions(model, p, c, 0, batch_size=4096, max_batch_tokens=args.budget)
        }
        if not args.no_fused:
            scorers["fused"] = lambda p, c: score_completions(
                model, p, c, 0, batch_size=4096, max_batch_tokens=args.budget, compile_body=True
            )
        if not args.no_reference:
            scorers["reference"] = lambda p, c: reference_scores(model, p, c)
        out = {}
        for key, fn in scorers.items():
            fn(prompts[:2], completions[:2])  # warm-up (kernels, autotuning, compiling: two rows, no size-1 graph)
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            times = []
            for _ in range(args.repeats):
                res, s = timed(lambda fn=fn, p=prompts, c=completions: fn(p, c), dev)
                times.append(s)
            s = statistics.median(times)
            out[key] = res
            row = dict(
                length=length,
                scorer=key,
                rows=rows,
                tokens=rows * length,
                seconds=s,
                tokens_per_s=rows * length / s,
                mfu=flops / s / rate,
                peak_gb=((torch.cuda.max_memory_allocated() if cuda else 0) - base) / 2**30,
            )
            rows_out.append(row)
            print(
                f"  {length:5d} tokens  {key:9s} {row['tokens_per_s']:9.0f} tokens/s  MFU {row['mfu']:.0%}  "
                f"peak +{row['peak_gb']:.1f} GiB  ({s:.2f} s median of {args.repeats})",
                flush=True,
            )
        for a, b in (("ours", "reference"), ("fused", "ours")):
            if a in out and b in out:
                d = max_abs_diff(out[a], out[b])
                print(f"  {length:5d} tokens  max |{a} - {b}| log-prob: {d:.2e} (bf16)", flush=True)
                rows_out.append(dict(length=length, scorer="diff", pair=f"{a}-{b}", max_abs_diff=d))
    print(f"\n=== {name}: {params / 1e9:.2f}B Qwen3 (random weights), bf16 matmul {rate / 1e12:.0f} TFLOP/s ===")
    print("length  scorer     tokens/s    MFU   peak GiB")
    for r in rows_out:
        if r["scorer"] != "diff":
            print(f"{r['length']:6d}  {r['scorer']:9s} {r['tokens_per_s']:9.0f}  {r['mfu']:5.0%}  {r['peak_gb']:8.1f}")
    for length in args.lengths:
        got = {r["scorer"]: r for r in rows_out if r["length"] == length and r["scorer"] != "diff"}
        for key in ("ours", "fused"):
            if "reference" in got and key in got:
                ratio = got[key]["tokens_per_s"] / got["reference"]["tokens_per_s"]
                print(f"{length}: {key} / reference = {ratio:.2f}x (target >= 3x), MFU {got[key]['mfu']:.0%}")
    if args.profile:
        profile(model, args, dev)
    print(f"total {time.perf_counter() - t0:.0f} s")
    print(json.dumps(dict(device=name, matmul_flops=rate, results=rows_out)))


if __name__ == "__main__":
    main()

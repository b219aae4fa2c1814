"""`python -m ctranscnn bench`: images/s of a model next to torchvision's resnet50 in the same process.

Arguments and printing only; what is measured and how is the benchmark library's (ctranscnn/bench.py).
"""
from __future__ import annotations

import argparse
import json

from ctranscnn.commands.common import add_set_argument, parse_overrides


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="registered model name")
    p.add_argument("--size", type=int, default=224, help="square input size in px (default 224)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--mode", choices=("train", "infer"), default="train")
    p.add_argument("--num-classes", type=int, default=14)
    p.add_argument("--fast", action="store_true", help="all exact fast paths (+ BN folding for inference)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast on CPU")
    p.add_argument("--channels-last", action="store_true", help="channels-last memory format")
    p.add_argument("--compile", action="store_true", help="torch.compile the forward (slow first step)")
    p.add_argument("--cuda-graph", action="store_true",
                   help="CUDA: capture the whole training step as one CUDA graph and replay it")
    p.add_argument("--ref-same", action="store_true", help="give resnet50 the same bf16/channels-last/compile")
    p.add_argument("--no-ref", action="store_true", help="skip resnet50 (ratio becomes NaN)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu), e.g. cuda")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    p.add_argument("--warmup", type=int, default=1, help="untimed step pairs first (default 1)")
    p.add_argument("--repeats", type=int, default=3, help="timed step pairs; medians are reported (default 3)")
    add_set_argument(p, "model config overrides")
    p.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    from ctranscnn.bench import BenchSpec, measure

    spec = BenchSpec(model=args.model, size=args.size, batch=args.batch, mode=args.mode,
                     num_classes=args.num_classes, fast=args.fast, bf16=args.bf16,
                     channels_last=args.channels_last, compile=args.compile, cuda_graph=args.cuda_graph,
                     ref_same=args.ref_same, reference=not args.no_ref, device=args.device,
                     threads=args.threads, warmup=args.warmup, repeats=args.repeats,
                     overrides=tuple(parse_overrides(args.set).items()))
    try:
        result = measure(spec)
    except ValueError as err:
        raise SystemExit(f"bench: {err}") from err
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{spec.model} {spec.mode} {spec.size}px batch {spec.batch}, {result['threads']} threads, "
          f"options {result['options']}")
    pct = lambda key: "" if result[key] is None else f" ({result[key]:.0f}% of fp32 peak)"  # noqa: E731
    print(f"  model    {result['images_per_s']:8.2f} images/s  {result['gflop_per_s']:7.1f} GFLOP/s"
          f"{pct('pct_fp32_peak')}  {result['memory_kind']} {result['peak_memory_mb']:.0f} MB")
    if spec.reference:
        print(f"  resnet50 {result['ref_images_per_s']:8.2f} images/s  {result['ref_gflop_per_s']:7.1f} GFLOP/s"
              f"{pct('ref_pct_fp32_peak')}")
        print(f"  ratio    {result['ratio']:.3f}")
    print(f"  fp32 peak: {result['fp32_peak_how']}; load average {result['load_avg_before'][0]:.1f}")
    return 0

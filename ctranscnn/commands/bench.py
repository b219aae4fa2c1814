"""`python -m ctranscnn bench`: images/s of a model next to torchvision's resnet50 in the same process.

Both models run the same step (train: forward, the authors' loss, backward, AdamW step; infer: forward under
torch.inference_mode) on the same random batch, with the same threads. Steps alternate model / resnet50 so
that load from other processes hits both alike; after `--warmup` pairs, the medians of `--repeats` pairs are
reported. The reference stays plain fp32 eager unless `--ref-same` gives it the same bf16/channels-last/compile
options. FLOPs are counted by torch's FlopCounterMode on the very step that is timed (backward included), so
GFLOP/s is executed work: the fast paths count fewer FLOPs than the faithful one for the same images.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import resource
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from ctranscnn.commands.common import add_set_argument, parse_overrides


@dataclass(frozen=True)
class BenchSpec:
    model: str
    size: int
    batch: int
    mode: str = "train"  # 'train' | 'infer'
    num_classes: int = 14
    fast: bool = False  # all FAST_SWITCHES; for inference also fuse_for_inference
    bf16: bool = False  # torch.autocast('cpu', bfloat16) around forward and loss
    channels_last: bool = False
    compile: bool = False
    cuda_graph: bool = False  # CUDA only: capture the whole step (forward, loss, backward, AdamW) once, replay it
    ref_same: bool = False  # apply bf16 / channels_last / compile to resnet50 too
    reference: bool = True  # time resnet50 next to the model
    device: str = "cpu"
    threads: int = 0  # 0: torch's default
    warmup: int = 1
    repeats: int = 3
    overrides: tuple = ()  # extra model config KEY=VALUE pairs


def build_model(spec: BenchSpec) -> nn.Module:
    from ctranscnn import create_model
    from ctranscnn.models.ctranscnn import FAST_SWITCHES, CTransCNN
    from ctranscnn.models.fused import fuse_for_inference

    overrides = parse_overrides(list(spec.overrides))
    if spec.fast and spec.model.startswith(("ctranscnn", "conformer")):
        overrides = {**FAST_SWITCHES, **overrides}
    model = create_model(spec.model, spec.num_classes, **overrides)
    if spec.fast and spec.mode == "infer" and isinstance(model, CTransCNN):
        model = fuse_for_inference(model)
    return model


def build_reference(spec: BenchSpec) -> nn.Module:
    import torchvision

    return torchvision.models.resnet50(weights=None, num_classes=spec.num_classes)


def make_step(model: nn.Module, spec: BenchSpec, use_options: bool = True) -> Callable[[], None]:
    """One benchmark step of `model` on a fixed random batch."""
    from ctranscnn.losses import build_loss

    bf16, channels_last = use_options and spec.bf16, use_options and spec.channels_last
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    device = torch.device(spec.device)
    model = model.to(device, memory_format=memory_format)
    x = torch.randn(spec.batch, 3, spec.size, spec.size, device=device).contiguous(memory_format=memory_format)
    y = (torch.rand(spec.batch, spec.num_classes, device=device) < 0.2).float()
    graph = use_options and spec.cuda_graph
    # a captured graph must not reuse autocast's cast cache across replays
    autocast = ((lambda: torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=not graph)) if bf16
                else contextlib.nullcontext)
    branches = getattr(model, "forward_head", None)
    forward = (lambda t: branches(model.forward_features(t))) if branches else model
    if use_options and spec.compile:
        forward = torch.compile(forward)

    if spec.mode == "infer":
        model.eval()

        def step() -> None:
            with torch.inference_mode(), autocast():
                forward(x)
        return capture(step, device) if graph else step

    model.train()
    loss_fn = build_loss("asl_focal")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05, capturable=graph)

    def step() -> None:
        with autocast():
            loss = loss_fn(forward(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=not graph)  # a graph keeps its gradient buffers; zeroing them is captured too
    return capture(step, device) if graph else step


def capture(step: Callable[[], None], device: torch.device) -> Callable[[], None]:
    """`step` captured as one CUDA graph (torch's whole-network capture recipe): three eager steps on a side
    stream, then one captured step whose replay reruns every kernel without Python or launch overhead."""
    if device.type != "cuda":
        raise ValueError("cuda_graph needs a CUDA device")
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(3):
            step()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay


def step_flops(step: Callable[[], None]) -> float:
    """FLOPs of one step (convolutions, matmuls, attention; forward and backward), counted by torch."""
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return float(counter.get_total_flops())


def fp32_peak_gflops(threads: int) -> tuple[float, str]:
    """Theoretical fp32 peak of `threads` cores: cores x clock x FLOPs/cycle, from /proc/cpuinfo.

    FLOPs/cycle assumes two FMA units per core (as on Xeon Scalable and recent desktop cores): 2 x 2 x lanes,
    with 16 fp32 lanes for AVX-512, 8 for AVX2 and 4 for SSE."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return float("nan"), "unknown (no /proc/cpuinfo)"
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    mhz = [float(line.split(":", 1)[1]) for line in text.splitlines() if line.startswith("cpu MHz")]
    lanes, isa = (16, "AVX-512") if "avx512f" in flags else (8, "AVX2+FMA") if "fma" in flags else (4, "SSE")
    ghz = max(mhz) / 1000 if mhz else float("nan")
    peak = threads * ghz * 2 * 2 * lanes
    return peak, f"{threads} cores x {ghz:.2f} GHz x {4 * lanes} FLOP/cycle ({isa}, 2 FMA units assumed)"


def peak_memory_mb(device: str) -> float:
    """CUDA: peak allocated device memory; CPU: the process's peak resident memory."""
    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def timed(fn: Callable[[], None], device: str) -> float:
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


def measure(spec: BenchSpec) -> dict:
    """Run the benchmark; returns the JSON-ready result."""
    if spec.mode not in ("train", "infer"):
        raise ValueError(f"mode must be 'train' or 'infer', got {spec.mode!r}")
    if spec.batch < 1 or spec.size < 32 or spec.repeats < 1 or spec.warmup < 0:
        raise ValueError(f"need batch >= 1, size >= 32, repeats >= 1, warmup >= 0; got {spec}")
    if spec.threads:
        torch.set_num_threads(spec.threads)
    threads = torch.get_num_threads()
    torch.manual_seed(0)
    load_before = os.getloadavg()
    rss_start = peak_memory_mb("cpu")

    step = make_step(build_model(spec), spec)
    for _ in range(spec.warmup):
        step()
    model_memory = peak_memory_mb(spec.device)  # the model's peak before resnet50 exists
    steps = {"model": step}
    if spec.reference:
        steps["ref"] = make_step(build_reference(spec), spec, spec.ref_same)
        for _ in range(spec.warmup):
            steps["ref"]()
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(spec.repeats):
        for key, fn in steps.items():
            times[key].append(timed(fn, spec.device))
    # FLOPs on a batch-2 copy of each step (work is linear in the batch), after the timing and memory reading.
    counting = BenchSpec(**{**asdict(spec), "batch": 2, "compile": False, "cuda_graph": False})
    flops = step_flops(make_step(build_model(counting), counting)) / 2
    ips = spec.batch / statistics.median(times["model"])
    ref_flops = ref_ips = float("nan")
    if spec.reference:
        ref_flops = step_flops(make_step(build_reference(counting), counting, counting.ref_same)) / 2
        ref_ips = spec.batch / statistics.median(times["ref"])
    peak, peak_how = fp32_peak_gflops(threads)
    if torch.device(spec.device).type != "cpu":
        peak, peak_how = float("nan"), f"not estimated for {spec.device}"
    result = {
        "model": spec.model, "mode": spec.mode, "size": spec.size, "batch": spec.batch, "threads": threads,
        "options": {k: getattr(spec, k) for k in ("fast", "bf16", "channels_last", "compile", "cuda_graph", "ref_same")},
        "overrides": list(spec.overrides),
        "images_per_s": ips, "ref_images_per_s": ref_ips, "ratio": ips / ref_ips,
        "step_s": times["model"], "ref_step_s": times.get("ref", []),
        "gflop_per_image": flops / 1e9, "ref_gflop_per_image": ref_flops / 1e9,
        "gflop_per_s": flops * ips / 1e9, "ref_gflop_per_s": ref_flops * ref_ips / 1e9,
        "fp32_peak_gflop_per_s": peak, "fp32_peak_how": peak_how,
        "pct_fp32_peak": 100 * flops * ips / 1e9 / peak, "ref_pct_fp32_peak": 100 * ref_flops * ref_ips / 1e9 / peak,
        "peak_memory_mb": model_memory, "start_rss_mb": rss_start,
        "memory_kind": "process peak RSS" if spec.device == "cpu" else "peak allocated device memory",
        "load_avg_before": list(load_before), "load_avg_after": list(os.getloadavg()),
        "torch": torch.__version__, "device": spec.device,
        "device_name": torch.cuda.get_device_name(spec.device) if torch.device(spec.device).type == "cuda"
        else platform.processor() or platform.machine(),
    }
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in result.items()}  # valid JSON


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
    spec = BenchSpec(model=args.model, size=args.size, batch=args.batch, mode=args.mode,
                     num_classes=args.num_classes, fast=args.fast, bf16=args.bf16,
                     channels_last=args.channels_last, compile=args.compile, cuda_graph=args.cuda_graph,
                     ref_same=args.ref_same,
                     reference=not args.no_ref, device=args.device,
                     threads=args.threads, warmup=args.warmup, repeats=args.repeats, overrides=tuple(args.set))
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

"""The benchmark library: images/s, FLOPs and peak memory of a model next to torchvision's resnet50.

Owns `BenchSpec` (what to run), the step construction (train: forward, the authors' loss, backward, AdamW step;
infer: forward under torch.inference_mode), CUDA-graph capture, FLOP counting, peak memory and `measure`, which
times them. Clients: `python -m ctranscnn bench` (ctranscnn/commands/bench.py: arguments and printing), the
scripts in benchmarks/ and the engine's train.cuda_graph (`capture`). Ground floor: it imports the models and
losses, nothing from engine, report or commands.

Both models run the same step on the same random batch, with the same threads. Steps alternate model / resnet50 so
that load from other processes hits both alike; after `warmup` pairs, the medians of `repeats` pairs are
reported. The reference stays plain fp32 eager unless `ref_same` gives it the same bf16/channels-last/compile
options. FLOPs are counted by torch's FlopCounterMode on the very step that is timed (backward included), so
GFLOP/s is executed work: the fast paths count fewer FLOPs than the faithful one for the same images.
"""
from __future__ import annotations

import contextlib
import os
import platform
import resource
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from ctranscnn.io import to_jsonable

@dataclass(frozen=True)
class BenchSpec:
    model: str
    size: int
    batch: int
    mode: str = "train"  # 'train' | 'infer'
    num_classes: int = 14
    fast: bool = False  # create_model(fast=True); for inference also fold_for_inference
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
    overrides: tuple[tuple[str, Any], ...] = ()  # extra model config (key, value) pairs; they win over `fast`


def build_model(spec: BenchSpec) -> nn.Module:
    """The benchmarked model; `fast` means what it means everywhere (create_model's fast switches, plus BN folding
    for inference), a no-op for models without fast paths."""
    from ctranscnn.models.folding import fold_for_inference
    from ctranscnn.registry import create_model

    model = create_model(spec.model, spec.num_classes, fast=spec.fast, **dict(spec.overrides))
    return fold_for_inference(model) if spec.fast and spec.mode == "infer" else model


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


def reset_peak_memory(device: str) -> None:
    """Start `peak_memory_mb`'s count again, so that it reports what comes next, not the process's past: CUDA
    through torch; CPU by resetting the kernel's resident high-water mark (Linux /proc/self/clear_refs; where that
    cannot be written the CPU peak stays the process's lifetime peak)."""
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_memory_mb(device: str) -> float:
    """CUDA: peak allocated device memory; CPU: the process's peak resident memory (both since the last
    `reset_peak_memory`)."""
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
        "overrides": dict(spec.overrides),
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
    return to_jsonable(result)  # NaN (no reference, no CPU peak) as None: valid JSON

"""Model throughput against torchvision resnet50: train and inference, at 224 px and at the demo size.

Each row is one `python -m ctranscnn bench ... --json` in a fresh process (so its peak RSS is its own), with
warm-up, several repeats and medians. Prints images/s, GFLOP/s, % of the fp32 peak, peak memory and the ratio
to resnet50 as it goes; writes all rows to JSON and the report results/benchmarks.md.

    python benchmarks/bench_model.py                      # the full matrix (tens of minutes on 2 cores)
    python benchmarks/bench_model.py --quick --out-md ''  # a smoke run at tiny sizes
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch

from gpu_check import EARLY_FAST_SWITCHES  # sibling script: the GPU runs' JSON format

from ctranscnn.engine.setup import git_commit
from ctranscnn.io import atomic_write_text, write_json

REPO = Path(__file__).resolve().parents[1]

# (label, model, size, batch, mode, flags); the faithful path first in each group, as the baseline.
def matrix(demo_size: int, quick: bool) -> list[tuple[str, str, int, int, str, list[str]]]:
    if quick:
        return [("micro train", "ctranscnn_micro", 64, 4, "train", []),
                ("micro train fast", "ctranscnn_micro", 64, 4, "train", ["--fast"]),
                ("micro infer fast", "ctranscnn_micro", 64, 4, "infer", ["--fast"])]
    rows = []
    for model, size, tb, ib in (("ctranscnn_tiny", 224, 16, 32), ("ctranscnn_mini", demo_size, 32, 64)):
        for mode, batch in (("train", tb), ("infer", ib)):
            rows += [
                (f"{mode} faithful", model, size, batch, mode, []),
                (f"{mode} fast", model, size, batch, mode, ["--fast"]),
                (f"{mode} fast+channels-last", model, size, batch, mode, ["--fast", "--channels-last"]),
                (f"{mode} fast+cl+bf16", model, size, batch, mode, ["--fast", "--channels-last", "--bf16"]),
                (f"{mode} fast+cl+bf16 (resnet50 bf16 too)", model, size, batch, mode,
                 ["--fast", "--channels-last", "--bf16", "--ref-same"]),
            ]
    return rows


def bench_command(model: str, size: int, batch: int, mode: str, flags: list[str], args: argparse.Namespace) -> list[str]:
    cmd = ["-m", "ctranscnn", "bench", "--model", model, "--size", str(size), "--batch", str(batch),
           "--mode", mode, "--warmup", str(args.warmup), "--repeats", str(args.repeats), *flags]
    return cmd + (["--threads", str(args.threads)] if args.threads else [])


def measured_matmul_gflops(threads: int, dtype: torch.dtype, n: int = 2048, reps: int = 5) -> float:
    """Best of `reps` n x n matrix products: what the BLAS really reaches on this machine now."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def machine_summary() -> list[str]:
    lines = []
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        keep = ("Model name", "CPU(s)", "Thread(s) per core", "Core(s) per socket", "L2 cache", "L3 cache",
                "Hypervisor vendor")
        lines += [" ".join(line.split()) for line in lscpu.splitlines() if line.split(":")[0].strip() in keep]
        flags = next((line.split(":", 1)[1].split() for line in lscpu.splitlines() if line.startswith("Flags")), [])
        lines.append("SIMD: " + " ".join(f for f in flags if f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16")))
    except (OSError, subprocess.CalledProcessError):
        lines.append(f"CPU: {platform.processor() or platform.machine()} (lscpu unavailable)")
    lines.append(f"torch {torch.__version__}, python {platform.python_version()}, {os.cpu_count()} CPUs visible")
    return lines


def fmt_row(label: str, model: str, r: dict, faithful: dict | None) -> str:
    speedup = f"{r['images_per_s'] / faithful['images_per_s']:.2f}x" if faithful else "n/a"
    return (f"| {model} | {r['size']} | {r['batch']} | {label} | {r['images_per_s']:.2f} | {speedup} "
            f"| {r['ref_images_per_s']:.2f} | **{r['ratio']:.3f}** | {r['gflop_per_image']:.1f} | {r['gflop_per_s']:.1f} "
            f"| {r['pct_fp32_peak']:.1f} "
            f"| {r['peak_memory_mb']:.0f} | {r['load_avg_before'][0]:.1f} / {r['load_avg_after'][0]:.1f} |")


def targets_section(rows: list[dict]) -> list[str]:
    """Issue 8's CPU targets against this run's ctranscnn_tiny rows at 224 px."""
    r = {row["label"]: row["result"] for row in rows if row["model"] == "ctranscnn_tiny" and row["result"]["size"] == 224}
    need = ("train faithful", "train fast", "train fast+channels-last", "train fast+cl+bf16",
            "train fast+cl+bf16 (resnet50 bf16 too)", "infer faithful", "infer fast", "infer fast+channels-last")
    if not all(k in r for k in need):
        return []
    ratio = lambda k: r[k]["ratio"]  # noqa: E731
    best_train = max(ratio("train fast"), ratio("train fast+channels-last"))
    best_infer = max(ratio("infer fast"), ratio("infer fast+channels-last"))
    yes = lambda ok: "yes" if ok else "no"  # noqa: E731
    threads = r["train faithful"]["threads"]
    return ["", f"## Against issue 8's targets ({threads} threads, fp32 resnet50 reference, this run)", "",
            "| target | measured | met |", "|---|---|---|",
            f"| fp32 train ratio >= 0.45 (authors' code: 0.36) | faithful {ratio('train faithful'):.3f}; fast "
            f"{ratio('train fast'):.3f}; fast+channels-last {ratio('train fast+channels-last'):.3f} | "
            f"{yes(best_train >= 0.45)} |",
            f"| fp32 inference ratio >= 0.60 (authors' code: 0.40) | faithful {ratio('infer faithful'):.3f}; fast (BN "
            f"folded) {ratio('infer fast'):.3f}; fast+channels-last {ratio('infer fast+channels-last'):.3f} | "
            f"{yes(best_infer >= 0.60)} |",
            f"| bf16 autocast train ratio >= 0.70 | {ratio('train fast+cl+bf16'):.3f} against fp32 resnet50 "
            f"({ratio('train fast+cl+bf16 (resnet50 bf16 too)'):.3f} against bf16 resnet50) | "
            f"{yes(ratio('train fast+cl+bf16') >= 0.70)}, against the fp32 reference |",
            "| data pipeline from cache >= 10x training throughput | see the data loader section | see below |",
            "| GPU: ctranscnn_tiny at 224, fp32/bf16, +-compile; paper protocol < 5 h | see the GPU section | see below |",
            "", "One run's medians. On this shared 2-core VM the same row moves by up to about 10% between runs (other "
            "tenants, and page faults on fresh large buffers that depend on the allocator's state), so compare rows "
            "within a run rather than across runs."]


def data_section(path: Path) -> list[str]:
    """The decode-cache benchmark (benchmarks/bench_data.py) from its JSON."""
    if not path.is_file():
        return []
    d = json.loads(path.read_text())
    m = d["meta"]
    out = ["", f"## Data loader: decode cache vs files (benchmarks/bench_data.py, {path.name})", "",
           f"{m['images']} NIH-like {m['source_px']} px grey PNGs, batch {m['batch_size']}, {m['loader_workers']} "
           f"loader workers, {m['torch_threads']} torch threads; training = {m['model']} forward + backward + AdamW "
           "at that size on the same machine, same run.", "",
           "| size | from files img/s | cache build img/s | from cache img/s | cache / files | training img/s "
           "| cache / training |", "|---|---|---|---|---|---|---|"]
    out += [f"| {r['size']} | {r['files_img_s']:,.1f} | {r['cache_build_img_s']:,.1f} | {r['cache_img_s']:,.0f} | "
            f"{r['cache_vs_files']:,.0f}x | {r['train_img_s']:,.1f} | {r['cache_vs_train']:,.0f}x |" for r in d["rows"]]
    ok = all(r["cache_vs_train"] >= 10 for r in d["rows"])
    return out + ["", f"Target (>= 10x the training throughput at every size): {'met' if ok else 'not met'}."]


def gpu_section(paths: list[Path]) -> list[str]:
    """The best GPU rows of benchmarks/gpu_check.py runs (full tables in results/gpu/gpu_check.md)."""
    runs = {p: json.loads(p.read_text()) for p in paths}
    rows = [(p, b) for p, r in runs.items() for b in r["bench"]]
    if not rows:
        return ["", "## GPU", "", "No GPU run recorded (`python benchmarks/gpu_check.py --out DIR` on a GPU)."]
    out = ["", "## GPU (benchmarks/gpu_check.py; all rows in results/gpu/gpu_check.md)", "",
           "ctranscnn_tiny training step at 224 px; 'paper protocol' = 300 epochs x 46,563 images of model compute. "
           "'fast' rows use the fast switches of their time: "
           + "; ".join(f"{p.stem}: {', '.join(r.get('fast_switches', EARLY_FAST_SWITCHES))}"
                       for p, r in runs.items()) + ".",
           "", "| device | configuration | batch | images/s | paper protocol h | run |", "|---|---|---|---|---|---|"]
    for p, b in sorted(rows, key=lambda pb: -pb[1]["images_per_s"]):
        out.append(f"| {b['device_name']} | {b['label']} | {b['batch']} | {b['images_per_s']:.0f} | "
                   f"{b['paper_protocol_hours']:.2f} | {p.stem} |")
    best32 = max((b for _, b in rows if b["batch"] == 32), key=lambda b: b["images_per_s"], default=None)
    if best32:
        out += ["", f"Goal 'paper protocol under 5 h on one H100': at the paper's batch 32 the best measured is "
                f"{best32['paper_protocol_hours']:.1f} h ({best32['label']}, {best32['device_name']}): "
                f"{'met' if best32['paper_protocol_hours'] < 5 else 'not met'}; no H100 was measured."]
    return out


def write_report(path: Path, rows: list[dict], args: argparse.Namespace, mm: dict, started: str, finished: str) -> None:
    threads = rows[0]["result"]["threads"] if rows else args.threads
    out = ["# Benchmarks", "",
           f"Generated by `bash benchmarks/run_all.sh` (model part: `{' '.join(sys.argv)}`), {started} to {finished}, "
           f"code at commit {git_commit()}.",
           "", "## Machine", ""]
    out += [f"- {line}" for line in machine_summary()]
    out += [f"- torch threads: {threads}",
            f"- fp32 peak (theoretical): {rows[0]['result']['fp32_peak_gflop_per_s']:.0f} GFLOP/s = "
            f"{rows[0]['result']['fp32_peak_how']}" if rows else "- fp32 peak: n/a",
            f"- measured 2048x2048 matmul: fp32 {mm['fp32']:.0f} GFLOP/s, bf16 {mm['bf16']:.0f} GFLOP/s",
            f"- load average (1 min) at start {mm['load_start']:.1f}, at end {mm['load_end']:.1f}; the per-row "
            "load is in the table. Other processes share this machine: each row alternates model and resnet50 "
            "steps in one process and reports medians, so the ratio is more stable than the images/s.",
            "", "## Results", "",
            "Ratio = images/s of the model / images/s of torchvision resnet50 in the same process (same threads, "
            "batch, size; resnet50 plain fp32 eager unless the row says otherwise). GFLOP/image and GFLOP/s are the "
            "work the measured step executes (torch FlopCounterMode; train = forward + backward), so the fast paths "
            "show fewer GFLOP/image for the same model. % peak is against the theoretical fp32 peak above. Peak RSS "
            "is the process's maximum resident memory after the model's warm-up step (includes ~0.3 GB of torch).",
            "'vs faithful' is images/s over the faithful row of the same model and mode in this run.",
            "", "| model | px | batch | configuration | images/s | vs faithful | resnet50 images/s | ratio | GFLOP/image "
            "| GFLOP/s | % fp32 peak | peak RSS MB | load before / after |", "|" + "---|" * 13]
    faithful = {(row["model"], row["result"]["mode"]): row["result"] for row in rows if row["label"].endswith("faithful")}
    out += [fmt_row(row["label"], row["model"], row["result"], faithful.get((row["model"], row["result"]["mode"])))
            for row in rows]
    out += targets_section(rows)
    out += data_section(REPO / "results" / "benchmarks_data.json")
    out += gpu_section(sorted((REPO / "results" / "gpu").glob("gpu_check_*.json")))
    curve_path = REPO / "results" / "bf16_loss_curve.json"
    if curve_path.is_file():
        c = json.loads(curve_path.read_text())
        out += ["", "## bf16 autocast training vs fp32 (benchmarks/bf16_loss_curve.py)", "",
                f"{c['model']} at {c['size']} px, batch {c['batch']}, {c['steps']} AdamW steps (lr {c['lr']}) from the "
                "same initial weights on the same synthetic batches (each label adds a fixed pattern to noise images):",
                "", f"- loss fp32 {c['fp32'][0]:.4f} -> {c['fp32'][-1]:.4f}; bf16 {c['bf16'][0]:.4f} -> {c['bf16'][-1]:.4f}",
                f"- largest per-step relative gap |bf16 - fp32| / fp32: {c['max_rel_gap']:.4f}",
                f"- mean of the last quarter: fp32 {c['fp32_last_quarter_mean']:.4f}, bf16 {c['bf16_last_quarter_mean']:.4f}",
                "- fp32 curve: " + " ".join(f"{v:.3f}" for v in c["fp32"]),
                "- bf16 curve: " + " ".join(f"{v:.3f}" for v in c["bf16"])]
    out += ["", "## What the configurations are", "",
            "- faithful: the default eager model, operation for operation the authors' computation.",
            "- fast: `create_model(..., fast=True)`, i.e. `FAST_SWITCHES` (ctranscnn/models/ctranscnn.py): `fast_c2t` (C2T's 1x1 convs composed and "
            "moved after the average pooling: exact algebra, ~1/10 of C2T's work), `fast_c2t_gate` (training: the C2T gate's "
            "BN statistics from its small input's mean and covariance, BN folded into the conv, sigmoid + pooling in one "
            "autograd Function that recomputes the 384-channel full-resolution map in backward instead of storing it; "
            "ctranscnn/models/c2t_gate.py), `fast_t2c` (T2C's projection as a "
            "Linear on the tokens), `fast_attention` (scale folded into q, max-free softmax of the sigmoid scores; "
            "`F.scaled_dot_product_attention` in softmax mode). Inference additionally uses `fold_for_inference` "
            "(ctranscnn/models/folding.py): every BN folded into its conv, MBR's 3x3 conv + 2*BN + 1x1 conv as one "
            "3x3 conv, both shortcuts as one 1x1 conv. Equal to the faithful path within 1e-5 relative "
            "(tests/test_fast_paths.py).",
            "- channels-last: `torch.channels_last` input and weights. bf16: `torch.autocast('cpu', bfloat16)` "
            "around forward and loss (AMX on this CPU); resnet50 stays fp32 unless the row says otherwise.",
            "", "## Commands", "", "Each row is one process:", "", "```"]
    out += [f"python {shlex.join(row['command'])}" for row in rows]
    out += ["```", ""]
    atomic_write_text(path, "\n".join(out))


def save(rows: list[dict], args: argparse.Namespace, mm: dict, started: str) -> None:
    mm["load_end"] = os.getloadavg()[0]
    finished = time.strftime("%Y-%m-%d %H:%M %Z")
    if args.out_json:
        write_json(args.out_json, {"matmul": mm, "started": started, "finished": finished, "rows": rows}, indent=1)
    if args.out_md:
        write_report(Path(args.out_md), rows, args, mm, started, finished)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--demo-size", type=int, default=128, help="image size of the demo profile (ctranscnn_mini)")
    p.add_argument("--only", default="", help="run only rows whose 'model label' contains this text")
    p.add_argument("--quick", action="store_true", help="tiny smoke matrix")
    p.add_argument("--render", metavar="JSON", help="only rewrite --out-md from a previous run's JSON")
    p.add_argument("--out-json", default=str(REPO / "results" / "benchmarks_model.json"))
    p.add_argument("--out-md", default=str(REPO / "results" / "benchmarks.md"))
    args = p.parse_args()

    if args.render:
        saved = json.loads(Path(args.render).read_text())
        write_report(Path(args.out_md), saved["rows"], args, saved["matmul"], saved["started"], saved["finished"])
        return 0
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    threads = args.threads or torch.get_num_threads()
    mm = {"load_start": os.getloadavg()[0], "fp32": measured_matmul_gflops(threads, torch.float32),
          "bf16": measured_matmul_gflops(threads, torch.bfloat16)}
    print(f"matmul 2048^2 on {threads} threads: fp32 {mm['fp32']:.0f} GFLOP/s, bf16 {mm['bf16']:.0f} GFLOP/s")
    rows = []
    for label, model, size, batch, mode, flags in matrix(args.demo_size, args.quick):
        if args.only not in f"{model} {label}":
            continue
        cmd = bench_command(model, size, batch, mode, flags, args)
        proc = subprocess.run([sys.executable, *cmd, "--json"], capture_output=True, text=True, cwd=REPO)
        if proc.returncode:
            print(f"FAILED {model} {label}:\n{proc.stderr[-2000:]}", file=sys.stderr)
            continue
        r = json.loads(proc.stdout)
        rows.append({"label": label, "model": model, "command": cmd, "result": r})
        print(f"{model:>15} {size}px b{batch} {label:<40} {r['images_per_s']:7.2f} img/s  resnet50 "
              f"{r['ref_images_per_s']:7.2f}  ratio {r['ratio']:.3f}  {r['gflop_per_s']:6.1f} GFLOP/s "
              f"({r['pct_fp32_peak']:.0f}% peak)  RSS {r['peak_memory_mb']:.0f} MB  load {r['load_avg_before'][0]:.1f}",
              flush=True)
        save(rows, args, mm, started)  # after every row, so an interrupted run still leaves its figures
    return 0 if rows else 1


if __name__ == "__main__":
    raise SystemExit(main())

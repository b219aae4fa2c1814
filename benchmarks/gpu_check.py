"""Issue 8's GPU check, one prepared script for a lent GPU (bounded by --budget-s, default 7.5 minutes).

  python benchmarks/gpu_check.py --out OUT_DIR [--budget-s 450] [--device cuda]

Writes OUT_DIR/gpu_check.json (updated after every item, so a cut-off run keeps what it measured) and prints a
table. Items in order of importance (plan_items); one is skipped when the time left is below its estimate:
1. numerics: the exact fast paths vs the faithful model on this GPU (outputs and gradients, TF32 off), and a
   CUDA-graph-replayed training step vs eager steps;
2. training images/s of ctranscnn_tiny at 224 px (`ctranscnn.bench.measure`: forward, the authors'
   loss, backward, AdamW step on one fixed batch), faithful and fast, fp32 and bf16 autocast, eager, whole-step
   CUDA graphs and torch.compile, at the paper's batch 32 (and 128), with torchvision resnet50 in the same process
   for the first eager rows; each row's projected model-compute time for the paper protocol (300 x 46,563 images);
3. end to end: the engine (`python -m ctranscnn train`, paper recipe at 224 px, 8 loader workers, decode cache)
   for one epoch on a generated cxr14 phantom in NIH's layout, bf16 deterministic and not, and fp16 (GradScaler)
   for a short epoch: measured images/s with data loading, projected to the paper protocol.
`--only WORD ...` keeps the items whose label contains one of the words (e.g. `--only graph nondeterministic`).
`--device cpu --quick` runs every item at toy sizes (a check of this script, not a measurement).
`--render RUN.json ... --md FILE` writes the Markdown table of one or more runs' JSON (results/gpu/gpu_check.md).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ctranscnn.bench import BenchSpec, capture, measure  # noqa: E402
from ctranscnn.engine.setup import git_commit  # noqa: E402
from ctranscnn.io import write_json  # noqa: E402
from ctranscnn.registry import create_model, fast_switches  # noqa: E402

# runs recorded before the report named its fast switches used these (the switches at the time)
EARLY_FAST_SWITCHES = ["fast_attention", "fast_c2t", "fast_t2c"]

PAPER_IMAGES = 300 * 46_563  # 300 epochs of the authors' NIH training list


class Budget:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def save(out: Path, report: dict) -> None:
    write_json(out / "gpu_check.json", report, indent=1)


@contextlib.contextmanager
def strict_fp32():
    """TF32 off for matmuls and convolutions (the numerics checks compare fp32 paths), restored afterwards."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def twin_models(device: str, size: int, batch: int, fast: tuple[bool, bool]):
    """Two ctranscnn_tiny in training mode with the same weights (one per `fast` flag of create_model, no
    drop-path, so both compute the same function), one fixed batch (x, y) and the authors' loss."""
    from ctranscnn.losses import build_loss

    torch.manual_seed(0)
    a, b = (create_model("ctranscnn_tiny", 14, fast=f, drop_path_rate=0.0).to(device).train() for f in fast)
    b.load_state_dict(a.state_dict())
    x = torch.randn(batch, 3, size, size, device=device)
    y = (torch.rand(batch, 14, device=device) < 0.2).float()
    return a, b, x, y, build_loss("asl_focal")


def numerics(device: str, size: int, batch: int) -> dict:
    """Max relative difference of the fast paths against the faithful model (same weights), TF32 off."""
    with strict_fp32():
        ref, fast, x, y, loss_fn = twin_models(device, size, batch, (False, True))
        outs = {}
        for name, model in (("faithful", ref), ("fast", fast)):
            branches = model.forward_head(model.forward_features(x))
            loss_fn(branches, y).backward()
            outs[name] = torch.cat([b.detach() for b in branches.values()])
        rel = lambda a, b, floor=0.0: float((a - b).abs().max() / max(b.abs().max().item(), floor, 1e-30))  # noqa: E731
        # As in tests/test_fast_paths.py: biases right before a train-mode BN have an exactly zero gradient, so
        # each gradient is compared relative to at least 1e-4 of the model's largest gradient.
        pairs = [(n, pf.grad, pr.grad) for (n, pr), pf in zip(ref.named_parameters(), fast.parameters())
                 if pr.grad is not None]
        floor = 1e-4 * max(g.abs().max().item() for _, _, g in pairs)
        worst = max((rel(gf, gr, floor), n) for n, gf, gr in pairs)
        return {"outputs_max_rel": rel(outs["fast"], outs["faithful"]), "grads_max_rel": worst[0],
                "worst_grad": worst[1], "size": size, "batch": batch, "tf32": False, "tolerance": 1e-5}


def graph_numerics(device: str, size: int, batch: int, replays: int = 3) -> dict:
    """A CUDA-graph-replayed training step against eager steps from the same weights (fast paths, fp32, TF32 off,
    no drop-path): max relative difference of every parameter and BN buffer after 3 + `replays` steps
    (`capture` runs three eager warm-up steps before capturing; capturing itself computes nothing)."""
    with strict_fp32():
        eager_model, graph_model, x, y, loss_fn = twin_models(device, size, batch, (True, True))

        def make(model: torch.nn.Module, graph: bool):
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05, capturable=graph)

            def step() -> None:
                loss_fn(model.forward_head(model.forward_features(x)), y).backward()
                opt.step()
                opt.zero_grad(set_to_none=not graph)
            return step

        eager = make(eager_model, False)
        for _ in range(3 + replays):
            eager()
        replay = capture(make(graph_model, True), torch.device(device))
        for _ in range(replays):
            replay()
        torch.cuda.synchronize(device)
        worst = max((float((b.double() - a.double()).abs().max() / a.double().abs().max().clamp_min(1e-30)), key)
                    for (key, a), b in zip(eager_model.state_dict().items(), graph_model.state_dict().values())
                    if a.is_floating_point())
        return {"state_max_rel": worst[0], "worst": worst[1], "steps": 3 + replays, "size": size, "batch": batch}


def plan_items(quick: bool) -> list[tuple[str, dict, float]]:
    """(label, item, estimated seconds) in order of importance: bench rows (BenchSpec fields) and engine runs."""
    size, b, big = (64, 4, 8) if quick else (224, 32, 128)
    common = {"model": "ctranscnn_tiny", "size": size, "mode": "train", "warmup": 3, "repeats": 10}
    fast = {"fast": True, "channels_last": True}
    solo = {"reference": False}
    graph = {"cuda_graph": True, **solo}
    limit = 32 if quick else 512
    return [
        ("graph numerics", {"size": size, "batch": 2 if quick else 8}, 30),
        ("faithful fp32", {**common, "batch": b}, 30),
        ("fast+cl fp32", {**common, "batch": b, **fast}, 30),
        ("fast+cl bf16", {**common, "batch": b, **fast, "bf16": True, "ref_same": True}, 30),
        ("fast+cl bf16", {**common, "batch": big, **fast, "bf16": True, **solo}, 30),
        ("fast+cl bf16 graph", {**common, "batch": b, **fast, "bf16": True, **graph}, 30),
        ("fast+cl fp32 graph", {**common, "batch": b, **fast, **graph}, 30),
        ("faithful fp32 graph", {**common, "batch": b, **graph}, 30),
        ("engine bf16", {"amp": "bf16", "limit_train": 0, "deterministic": True}, 90),  # 0: the whole train split
        ("engine bf16 nondeterministic", {"amp": "bf16", "limit_train": 0, "deterministic": False}, 60),
        ("fast+cl bf16 compile", {**common, "batch": b, **fast, "bf16": True, "compile": True, **solo}, 180),
        ("fast+cl fp32 compile", {**common, "batch": b, **fast, "compile": True, **solo}, 180),
        ("fast+cl bf16 compile", {**common, "batch": big, **fast, "bf16": True, "compile": True, **solo}, 180),
        ("engine fp16", {"amp": "fp16", "limit_train": limit, "deterministic": True}, 60),
    ]


def engine_run(args: argparse.Namespace, out: Path, work: Path, amp: str, limit_train: int, deterministic: bool,
               n_phantom: int) -> dict:
    """One epoch of the engine on a cxr14 phantom; images/s of the training steps (data loading included)."""
    root = work / "cxr14"
    py = sys.executable
    if not (root / "Data_Entry_2017.csv").exists():
        t0 = time.perf_counter()
        subprocess.run([py, "-m", "ctranscnn", "phantom", "cxr14", "--out", str(root), "--n", str(n_phantom),
                        "--size", str(256 if not args.quick else 64), "--workers", str(os.cpu_count() or 1)],
                       check=True, stdout=subprocess.DEVNULL)
        print(f"phantom: {n_phantom} images in {time.perf_counter() - t0:.1f} s", flush=True)
    size = 64 if args.quick else 224
    name = f"e2e_{amp}{'' if deterministic else '_nondeterministic'}"
    sets = [f"data.root={root}", "data.dataset=nih", "data.split=patient", f"data.image_size={size}",
            f"data.limit_train={limit_train}", "data.limit_val=64", "data.limit_test=64",
            f"data.cache_dir={work / 'cache'}", f"data.num_workers={0 if args.quick else 8}",
            f"train.device={args.device}", f"train.amp={amp}", "train.fast=true", "train.channels_last=true",
            f"train.deterministic={str(deterministic).lower()}", "schedule.epochs=1", f"train.out_dir={work / 'runs'}", f"train.run_name={name}", "train.progress=false",
            "eval.n_boot=10"]
    if args.quick:
        sets += ["model.size=micro", "train.batch_size=8"]
    shutil.rmtree(work / "runs" / name, ignore_errors=True)  # a fresh run, not a resumed one
    t0 = time.perf_counter()
    proc = subprocess.run([py, "-m", "ctranscnn", "train", "--config", "configs/paper_nih.yaml", "--set", *sets],
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    (out / f"{name}.log").write_text(proc.stdout[-20000:] + proc.stderr[-20000:])
    if proc.returncode:
        return {"amp": amp, "error": proc.stderr[-2000:]}
    manifest = json.loads((work / "runs" / name / "manifest.json").read_text())
    metrics = json.loads((work / "runs" / name / "metrics.json").read_text())
    ips = manifest["images_per_s"]
    return {"amp": amp, "deterministic": deterministic, "images": manifest["dataset"]["sizes"]["train"], "images_per_s": ips, "process_wall_s": round(wall, 1),
            "paper_protocol_hours": PAPER_IMAGES / ips / 3600, "train_wall_s": manifest.get("wall_time_s"),
            "total_wall_s": manifest.get("total_wall_time_s"), "test_mauc_after_one_epoch": metrics["last"]["test"]["mAUC"]}


def run_item(args: argparse.Namespace, work: Path, label: str, item) -> dict:
    if label == "graph numerics":
        return graph_numerics(args.device, **item)
    if label.startswith("engine"):
        return engine_run(args, args.out, work, **item, n_phantom=64 if args.quick else 2400)
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()  # each row reports its own peak
    return measure(BenchSpec(**item, device=args.device))


def render(paths: list[Path], md: Path) -> None:
    """One Markdown table of the bench and engine rows of several runs (each row names its run)."""
    runs = [(p, json.loads(p.read_text())) for p in paths]
    out = ["# GPU check (issue 8): `benchmarks/gpu_check.py`", "",
           "How the runs were made (commands and code state): results/gpu/README.md.", "",
           f"Generated by `python benchmarks/gpu_check.py --render {' '.join(str(p) for p in paths)} --md {md}`.", ""]
    for p, r in runs:
        if "command" in r:
            out.append(f"- `{p.name}`: `{r['command']}` at commit {r['commit']}")
        out.append(f"- `{p.name}`: {r['device']}, torch {r['torch']}, TF32 matmul {r['tf32']['matmul']} / cuDNN "
                   f"conv {r['tf32']['cudnn_conv']}, cudnn.benchmark {r['cudnn_benchmark']} (bench rows); 'fast' = "
                   f"{', '.join(r.get('fast_switches', EARLY_FAST_SWITCHES))}")
    out += ["", "Training step of ctranscnn_tiny at 224 px (forward, the authors' loss, backward, AdamW step) on one "
            "fixed batch; median of 10 steps after 3 warm-up steps. 'paper protocol' = "
            f"{PAPER_IMAGES:,} images (300 epochs x 46,563) / images/s: model compute only. TFLOP/s = executed "
            "FLOPs (torch FlopCounterMode) / time. resnet50 = torchvision resnet50 in the same process, same options "
            "unless plain fp32.", "",
            "| run | configuration | batch | images/s | TFLOP/s | peak MB | paper protocol h | resnet50 images/s |",
            "|---|---|---|---|---|---|---|---|"]
    for p, r in runs:
        for b in r["bench"]:
            ref = "" if b["ref_images_per_s"] is None else f"{b['ref_images_per_s']:.0f}"
            out.append(f"| {p.stem} | {b['label']} | {b['batch']} | {b['images_per_s']:.0f} | "
                       f"{b['gflop_per_s'] / 1000:.1f} | {b['peak_memory_mb']:.0f} | "
                       f"{b['paper_protocol_hours']:.2f} | {ref} |")
    out += ["", "Engine (`python -m ctranscnn train --config configs/paper_nih.yaml`, fast paths, channels-last, "
            "8 loader workers from the decode cache, batch 32) for one epoch on a cxr14 phantom (2,400 images at "
            "256 px, patient split): images/s of the training steps with data loading, checkpoints excluded.", "",
            "| run | amp | deterministic | train images | images/s | paper protocol h |", "|---|---|---|---|---|---|"]
    for p, r in runs:
        for e in r["engine"]:
            if "error" in e:
                out.append(f"| {p.stem} | {e['amp']} | | | failed | |")
            else:
                out.append(f"| {p.stem} | {e['amp']} | {e.get('deterministic', True)} | {e['images']} | "
                           f"{e['images_per_s']:.0f} | {e['paper_protocol_hours']:.1f} |")
    out += ["", "Numerics on the GPU (TF32 off):", ""]
    for p, r in runs:
        if r.get("numerics"):
            n = r["numerics"]
            out.append(f"- `{p.stem}` fast paths vs faithful, batch {n['batch']} at {n['size']} px: outputs "
                       f"{n['outputs_max_rel']:.1e}, gradients {n['grads_max_rel']:.1e} (worst {n['worst_grad']}; "
                       "tolerance 1e-5)")
        if r.get("graph_numerics"):
            g = r["graph_numerics"]
            out.append(f"- `{p.stem}` CUDA-graph replay vs eager after {g['steps']} AdamW steps: largest relative "
                       f"difference of a parameter or BN buffer {g['state_max_rel']:.3g} ({g['worst']})")
    out += ["", "Items not measured:", ""]
    out += [f"- `{p.stem}`: {s.splitlines()[0]}" for p, r in runs for s in r["skipped"]] or ["- none"]
    md.write_text("\n".join(out) + "\n")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, help="folder for gpu_check.json and the engine logs")
    p.add_argument("--render", type=Path, nargs="*", help="runs' gpu_check.json files to tabulate (with --md)")
    p.add_argument("--md", type=Path, default=Path("results/gpu/gpu_check.md"))
    p.add_argument("--budget-s", type=float, default=450)
    p.add_argument("--device", default="cuda")
    p.add_argument("--only", nargs="*", default=[], help="run only the items whose label contains one of these")
    p.add_argument("--quick", action="store_true", help="toy sizes, to check this script on CPU")
    args = p.parse_args()
    if args.render:
        render(args.render, args.md)
        return 0
    if args.out is None:
        p.error("--out is required (unless --render)")
    budget = Budget(args.budget_s)
    args.out.mkdir(parents=True, exist_ok=True)
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.backends.cudnn.benchmark = True  # bench rows only; the engine runs set their own (deterministic)
    report: dict = {
        "device": torch.cuda.get_device_name(args.device) if cuda else "cpu", "torch": torch.__version__,
        "tf32": {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn_conv": torch.backends.cudnn.allow_tf32},
        "cudnn_benchmark": torch.backends.cudnn.benchmark, "paper_images": PAPER_IMAGES,
        "command": " ".join(sys.argv), "commit": git_commit(),
        "fast_switches": sorted(fast_switches("ctranscnn_tiny")), "numerics": None, "bench": [], "engine": [], "skipped": [],
    }
    print(f"{report['device']}, torch {report['torch']}, TF32 {report['tf32']}", flush=True)
    report["numerics"] = numerics(args.device, 64 if args.quick else 224, 2 if args.quick else 8)
    print(f"numerics fast vs faithful: {report['numerics']}", flush=True)
    save(args.out, report)

    plan = [row for row in plan_items(args.quick) if not args.only or any(k in row[0] for k in args.only)]
    work = Path(os.environ.get("GPU_CHECK_WORK", "/tmp/gpu_check_work"))
    for label, item, estimate in plan:
        if budget.left() < estimate:
            report["skipped"].append(f"{label} {item}: {budget.left():.0f} s left, needs ~{estimate} s")
            print(f"skip {label}: {budget.left():.0f} s left", flush=True)
            continue
        t0 = time.perf_counter()
        try:
            res = run_item(args, work, label, item)
        except Exception as err:  # keep measuring the other items; the error goes into the report
            report["skipped"].append(f"{label} {item}: {type(err).__name__}: {err}")
            print(f"FAILED {label}: {type(err).__name__}: {err}", flush=True)
            save(args.out, report)
            continue
        if label == "graph numerics":
            report["graph_numerics"] = res
            print(f"graph numerics: {res}", flush=True)
        elif label.startswith("engine"):
            report["engine"].append(res)
            print(f"engine {item}: {res}", flush=True)
        else:
            res["label"] = label
            res["paper_protocol_hours"] = PAPER_IMAGES / res["images_per_s"] / 3600
            report["bench"].append(res)
            ref = "" if res["ratio"] is None else f"  resnet50 {res['ref_images_per_s']:8.1f}  ratio {res['ratio']:.3f}"
            print(f"{label:22s} batch {res['batch']:>3}  {res['images_per_s']:8.1f} img/s  "
                  f"{res['gflop_per_s'] / 1000:6.1f} TFLOP/s  {res['peak_memory_mb']:7.0f} MB  "
                  f"300 epochs {res['paper_protocol_hours']:5.2f} h{ref}", flush=True)
        print(f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
        save(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

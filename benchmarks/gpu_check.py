"""Issues 8 and 18's GPU check, one prepared script for a lent GPU (bounded by --budget-s, default 7.5 minutes).

  python benchmarks/gpu_check.py --out OUT_DIR [--budget-s 450] [--device cuda]

Writes OUT_DIR/gpu_check.json (updated after every item, so a cut-off run keeps what it measured) and prints a
table. Items in order of importance (plan_items); one is skipped when the time left is below its estimate:
1. numerics: the exact fast paths vs the faithful model on this GPU (outputs and gradients, TF32 off), and a
   CUDA-graph-replayed training step vs eager steps;
2. training images/s of ctranscnn_tiny at 224 px (`ctranscnn.bench.measure`: forward, the authors'
   loss, backward, AdamW step on one fixed batch), faithful and fast, fp32 and bf16 autocast, eager, whole-step
   CUDA graphs and torch.compile, at the paper's batch 32 (and 128), with torchvision resnet50 in the same process
   for the first eager rows; each row's projected model-compute time for the paper protocol (300 x 46,563 images);
3. end to end (issue 18): the engine's Trainer (configs/paper_nih.yaml: the paper recipe at 224 px, batch 32,
   loader workers 'auto' from the decode cache, validation every epoch) on a generated cxr14 phantom in NIH's
   layout (1,679 training images: 52 full batches and one of 15), in one child process per configuration:
   eager fp32 faithful, bf16 and fp32 with the fast paths + channels-last + train.cuda_graph, bf16 eager with
   train.deterministic strict / warn / off, bf16 graph strict, bf16 torch.compile. Per row: images/s of the
   training steps (data loading included; the first epoch, with capture/compilation, left out), its ratio to the
   best bench figure of the same precision, validation images/s, and the projected paper-protocol wall time
   (300 epochs x 46,563 training images + 300 validations of 3,624 images). Loss curves: the training loss read
   every 8 steps (train.sync_every) over 4 epochs (212 steps); max relative difference fast graph fp32 vs eager
   fp32 faithful, and bf16 vs fp32.
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
PAPER_VAL_IMAGES = 300 * 3_624  # a validation of the authors' NIH val list after every epoch
CURVE_EVERY = 8  # train.sync_every of the engine rows: the loss curves are the means of 8-step windows


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
    """(label, item, estimated seconds) in order of importance: bench rows (BenchSpec fields) and engine runs
    (--set values). Within 450 s everything up to the graph numerics fits; the compile rows (minutes of
    compilation each) come last and need a second run (`--only compile`) when the first leaves no time."""
    size, b, big = (64, 4, 8) if quick else (224, 32, 128)
    common = {"model": "ctranscnn_tiny", "size": size, "mode": "train", "warmup": 3, "repeats": 10}
    fast = {"fast": True, "channels_last": True}
    solo = {"reference": False}
    graph = {"cuda_graph": True, **solo}
    eng_fast = {"train.fast": True, "train.channels_last": True}
    eng_graph = {**eng_fast, "train.cuda_graph": True}
    bf16 = {"train.amp": "bf16"}
    curve, short = {"schedule.epochs": 4}, {"schedule.epochs": 2}
    return [
        ("fast+cl bf16 graph", {**common, "batch": b, **fast, "bf16": True, **graph}, 30),
        ("fast+cl fp32 graph", {**common, "batch": b, **fast, **graph}, 30),
        ("engine bf16 fast graph", {**bf16, **eng_graph, **curve}, 50),
        ("engine fp32 faithful eager", {"train.fast": False, **curve}, 70),
        ("engine fp32 fast graph", {**eng_graph, **curve}, 55),
        ("engine bf16 fast eager warn", {**bf16, **eng_fast, **short, "train.deterministic": "warn"}, 35),
        ("engine bf16 fast eager off", {**bf16, **eng_fast, **short, "train.deterministic": "off"}, 35),
        ("engine bf16 fast eager strict", {**bf16, **eng_fast, **short, "train.deterministic": "strict"}, 35),
        ("engine bf16 fast graph strict", {**bf16, **eng_graph, **short, "train.deterministic": "strict"}, 30),
        ("faithful fp32", {**common, "batch": b}, 30),
        ("graph numerics", {"size": size, "batch": 2 if quick else 8}, 20),
        ("engine bf16 fast compile", {**bf16, **eng_fast, **short, "train.compile": True}, 150),
        ("fast+cl bf16", {**common, "batch": b, **fast, "bf16": True, "ref_same": True}, 30),
        ("fast+cl bf16 compile", {**common, "batch": b, **fast, "bf16": True, "compile": True, **solo}, 180),
        ("fast+cl bf16", {**common, "batch": big, **fast, "bf16": True, **solo}, 30),
    ]


def make_phantom(args: argparse.Namespace, work: Path) -> Path:
    root = work / "cxr14"
    if not (root / "Data_Entry_2017.csv").exists():
        t0 = time.perf_counter()
        n = 64 if args.quick else 2400
        subprocess.run([sys.executable, "-m", "ctranscnn", "phantom", "cxr14", "--out", str(root), "--n", str(n),
                        "--size", str(64 if args.quick else 256), "--workers", str(os.cpu_count() or 1)],
                       check=True, stdout=subprocess.DEVNULL)
        print(f"phantom: {n} images in {time.perf_counter() - t0:.1f} s", flush=True)
    return root


def engine_sets(args: argparse.Namespace, work: Path, name: str, item: dict) -> dict:
    """--set values of one engine row: the paper recipe on the phantom, plus the row's switches."""
    sets = {"data.root": str(make_phantom(args, work)), "data.dataset": "nih", "data.split": "patient",
            "data.image_size": 64 if args.quick else 224, "data.limit_test": 64, "data.cache_dir": str(work / "cache"),
            "data.num_workers": "auto", "train.device": args.device, "train.sync_every": CURVE_EVERY,
            "train.checkpoint_every": 0, "train.out_dir": str(work / "runs"), "train.run_name": name,
            "train.progress": False, "eval.n_boot": 10, **item}
    if args.quick:  # a check of the wiring: micro model, and on CPU no graphs or compilation
        sets |= {"model.size": "micro", "train.batch_size": 8}
        if not args.device.startswith("cuda"):
            sets |= {"train.cuda_graph": False, "train.compile": False}
    return sets


def engine_child(spec: Path) -> None:
    """Run in a child process (the determinism flags are process-wide): train one engine row, write its result."""
    from ctranscnn.engine.config import load_config
    from ctranscnn.engine.rundir import RunDir
    from ctranscnn.engine.trainer import Trainer

    job = json.loads(spec.read_text())
    cfg = load_config("configs/paper_nih.yaml", job["sets"])
    run = RunDir.for_config(cfg)
    shutil.rmtree(run.path, ignore_errors=True)  # a fresh run, not a resumed one
    trainer = Trainer(cfg, run)
    curve: list[list[float]] = []
    val: list[float] = []
    trainer.on_sync = lambda step, loss: curve.append([step, loss])
    evaluate = trainer.evaluate

    def timed_evaluate(split: str, loader=None):
        t0 = time.perf_counter()
        out = evaluate(split, loader)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize(trainer.device)
        if split == "val" and loader is not None:  # the per-epoch validations (not the final evaluation)
            val.append(time.perf_counter() - t0)
        return out

    trainer.evaluate = timed_evaluate
    trainer.fit()
    hist = trainer.state.history
    per_epoch = len(trainer.splits["train"])
    steady = [r["epoch_seconds"] for r in hist[1:]] or [hist[0]["epoch_seconds"]]  # epoch 1: capture, compile
    ips = per_epoch * len(steady) / sum(steady)
    n_val = len(trainer.splits["val"])
    val_ips = n_val * len(val[1:] or val) / sum(val[1:] or val)
    write_json(Path(job["result"]), {
        "images": per_epoch, "epochs": len(hist), "images_per_s": ips, "first_epoch_s": hist[0]["epoch_seconds"],
        "val_images": n_val, "val_images_per_s": val_ips, "workers": trainer.workers, "curve": curve,
        "train_loss": [r["train_loss"] for r in hist], "val_mauc": [r["val_mAUC"] for r in hist]})


def engine_run(args: argparse.Namespace, work: Path, label: str, item: dict) -> dict:
    """One engine row in a child process (engine_child); images/s and the projected paper-protocol wall time."""
    name = label.replace(" ", "_")
    spec, result = args.out / f"{name}.job.json", args.out / f"{name}.result.json"
    result.unlink(missing_ok=True)
    write_json(spec, {"sets": engine_sets(args, work, name, item), "result": str(result)})
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--engine-child", str(spec)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    (args.out / f"{name}.log").write_text(proc.stdout[-20000:] + proc.stderr[-20000:])
    if proc.returncode:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}")
    res = json.loads(result.read_text())
    hours = (PAPER_IMAGES / res["images_per_s"] + PAPER_VAL_IMAGES / res["val_images_per_s"]) / 3600
    return {"label": label, "sets": item, "amp": item.get("train.amp", "none"),
            "deterministic": item.get("train.deterministic", "warn"), **res,
            "process_wall_s": round(time.perf_counter() - t0, 1),
            "paper_protocol_hours": PAPER_IMAGES / res["images_per_s"] / 3600, "paper_wall_hours": hours}


def best_bench(report: dict, amp: str) -> float | None:
    """The best bench images/s at the paper's batch 32 of a precision ('bf16' or not)."""
    rates = [b["images_per_s"] for b in report["bench"]
             if b["batch"] == report["bench_batch"] and b["options"]["bf16"] == (amp == "bf16")]
    return max(rates) if rates else None


def curve_difference(a: dict, b: dict) -> dict:
    """Max relative difference of two engine rows' loss curves at the steps both read."""
    ref = {int(s): v for s, v in b["curve"]}
    diffs = [(abs(v - ref[int(s)]) / max(abs(ref[int(s)]), 1e-30), int(s)) for s, v in a["curve"] if int(s) in ref]
    worst = max(diffs, default=(float("nan"), 0))
    return {"a": a["label"], "b": b["label"], "points": len(diffs), "max_rel": worst[0], "at_step": worst[1],
            "every": CURVE_EVERY}


def summarise_engine(report: dict) -> None:
    """Ratios to the best bench figure and the loss-curve comparisons, from the rows measured so far."""
    rows = {e["label"]: e for e in report["engine"] if "curve" in e}
    for e in report["engine"]:
        best = best_bench(report, e["amp"])
        e["bench_best"] = best
        e["ratio_to_bench"] = e["images_per_s"] / best if best else None
    report["curves"] = [curve_difference(rows[a], rows[b]) for a, b in
                        (("engine fp32 fast graph", "engine fp32 faithful eager"),
                         ("engine bf16 fast graph", "engine fp32 fast graph"),
                         ("engine bf16 fast graph", "engine fp32 faithful eager")) if a in rows and b in rows]


def run_item(args: argparse.Namespace, work: Path, label: str, item) -> dict:
    if label == "graph numerics":
        return graph_numerics(args.device, **item)
    if label.startswith("engine"):
        return engine_run(args, work, label, item)
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
            if "label" in e:  # issue 18's rows: below
                continue
            if "error" in e:
                out.append(f"| {p.stem} | {e['amp']} | | | failed | |")
            else:
                out.append(f"| {p.stem} | {e['amp']} | {e.get('deterministic', True)} | {e['images']} | "
                           f"{e['images_per_s']:.0f} | {e['paper_protocol_hours']:.1f} |")
    rows = [(p, e) for p, r in runs for e in r["engine"] if "label" in e]
    if rows:
        out += ["", "Engine rows of issue 18 (the Trainer on configs/paper_nih.yaml, batch 32, loader workers 'auto', "
                f"loss read every {CURVE_EVERY} steps, validation every epoch; images/s without the first epoch): "
                "'of bench' = images/s / the best bench figure of the same precision; 'paper h' = 300 x 46,563 "
                "training images + 300 x 3,624 validation images at the measured rates.", "",
                "| run | configuration | deterministic | workers | images/s | of bench | val images/s | paper h |",
                "|---|---|---|---|---|---|---|---|"]
        for p, e in rows:
            ratio = "" if e.get("ratio_to_bench") is None else f"{e['ratio_to_bench']:.2f}"
            out.append(f"| {p.stem} | {e['label']} | {e['deterministic']} | {e['workers']} | "
                       f"{e['images_per_s']:.0f} | {ratio} | {e['val_images_per_s']:.0f} | "
                       f"{e['paper_wall_hours']:.2f} |")
        out += ["", "Loss curves (means of the training loss over the same 8-step windows):", ""]
        out += [f"- `{p.stem}` {c['a']} vs {c['b']}: max relative difference {c['max_rel']:.2e} (step "
                f"{c['at_step']}, {c['points']} windows)" for p, r in runs for c in r.get("curves", [])]
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
    p.add_argument("--engine-child", type=Path, help=argparse.SUPPRESS)  # internal: one engine row (engine_run)
    args = p.parse_args()
    if args.engine_child:
        engine_child(args.engine_child)
        return 0
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
        "bench_batch": 4 if args.quick else 32, "curves": [],
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
            summarise_engine(report)
            ratio = "" if res["ratio_to_bench"] is None else f"  {res['ratio_to_bench']:.2f} of bench"
            print(f"{label:30s} {res['images_per_s']:7.1f} img/s{ratio}  val {res['val_images_per_s']:7.1f} img/s  "
                  f"{res['workers']} workers  paper protocol {res['paper_wall_hours']:5.2f} h", flush=True)
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

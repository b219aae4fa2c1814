"""Preflight of `PROFILE=paper`: everything that can be known before the first run starts, so that a missing
image, a full disk or an out-of-memory batch is found in minutes instead of after a GPU-day.

1. `data check` of every dataset (the notebooks' loaders, on the split each notebook will use);
2. the planned runs (model x dataset x seed x split) and which of them are already finished and will be reused;
3. a measured step time of each distinct model on the actual device (a few warm steps, the run's batch and image
   size) turned into an estimated wall time per run and in total (one run at a time, and with as many at once as
   the notebooks' worker slots allow: one per GPU, or per group of `train.cpu_threads` cores);
4. disk needed for checkpoints (and decode caches) against free space;
5. peak device memory of one step against what the device has.

Printed as a table, written to results/preflight.md; exit status 1 with the reasons when data, disk or memory
will not do (`--force`, reproduce.sh's PREFLIGHT=force, proceeds anyway).

    python -m ctranscnn.report.preflight --profile paper --nih-root /data/nih --authors-lists /data/lists
"""
from __future__ import annotations

import argparse
import heapq
import math
import os
import shutil
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ctranscnn.io import atomic_write_text
from ctranscnn.report.context import NotebookContext
from ctranscnn.report.tables import to_markdown

# Bytes per parameter on disk per run: best.pt and last.pt each hold fp32 weights and AdamW's two moments
# (measured: 409 MB each for ctranscnn_tiny's 34.0 M parameters).
CHECKPOINT_BYTES_PER_PARAM = 2 * 3 * 4
EVAL_COST = 1 / 3  # an inference image costs about a third of a training image (forward only)


@dataclass
class Preflight:
    """What preflight found; `problems` are the reasons to stop."""

    data: pd.DataFrame
    runs: pd.DataFrame
    models: pd.DataFrame
    resources: pd.DataFrame
    problems: list[str] = field(default_factory=list)
    workers: int = 1  # runs trained at once (the notebooks' worker slots: GPUs, or CPU core groups)

    @property
    def ok(self) -> bool:
        return not self.problems

    def markdown(self, title: str = "Preflight") -> str:
        todo = self.runs[self.runs["status"] != "finished"]
        # The notebooks train their runs one notebook after another, each notebook's in plan order over the pool.
        parallel = sum(makespan(g["est_s"].tolist(), self.workers) for _, g in todo.groupby("notebook", sort=False))
        at_once = (f", about {fmt_duration(parallel)} with the {self.workers} runs at once that this machine's "
                   "worker slots allow") if self.workers > 1 and len(todo) > 1 else ""
        lines = [f"# {title}", "", f"**{'OK' if self.ok else 'STOP'}**: {len(self.runs)} planned run(s), "
                 f"{int((self.runs['status'] == 'finished').sum())} finished (reused), estimated "
                 f"{fmt_duration(todo['est_s'].sum())} of training for the rest one run at a time{at_once}.", ""]
        for name, df in (("Data check", self.data), ("Models: measured step", self.models),
                         ("Disk and memory", self.resources), ("Planned runs", self.runs)):
            lines += [f"## {name}", "", to_markdown(df), ""]
        if self.problems:
            lines += ["## Problems", "", *(f"- {p}" for p in self.problems), ""]
        return "\n".join(lines)


def makespan(seconds: list[float], workers: int) -> float:
    """Wall time of runs taking `seconds` on `workers` parallel workers, each run in turn going to the first
    worker that is free (what a process pool fed in this order does)."""
    free_at = [0.0] * max(1, workers)  # a heap of the times the workers become free
    for s in seconds:
        heapq.heapreplace(free_at, free_at[0] + s)
    return max(free_at)


def fmt_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "unknown"
    h, rem = divmod(int(round(seconds)), 3600)
    return f"{h} h {rem // 60} min" if h else f"{rem // 60} min {rem % 60} s"


def check_data(ctx: NotebookContext) -> tuple[pd.DataFrame, list[str]]:
    """Every dataset through the loader the notebooks use, on the split they use; one row per dataset (with its
    number of classes)."""
    from ctranscnn.data.errors import DataError
    from ctranscnn.data.splits import load_splits

    rows, problems = [], []
    for ds in ctx.datasets:
        row = {"dataset": ds.name, "root": str(ds.root), "split": "", "classes": 0, "train": 0, "val": 0, "test": 0,
               "status": "ok"}
        try:
            row["split"] = split = ctx.split_for(ds)
            with warnings.catch_warnings():  # leakage of the authors' split is the paper's protocol, reported in 01
                warnings.simplefilter("ignore")
                splits = load_splits(ds.kind, ds.root, split, ds.lists, missing=ds.missing)
            row |= {name: len(s) for name, s in splits.items()} | {"classes": len(splits["train"].classes)}
            dropped = sum((s.dropped or {}).get("images", 0) for s in splits.values())
            if dropped:
                row["status"] = f"ok ({dropped:,} missing images left out: data.missing=skip)"
        except (DataError, ValueError, FileNotFoundError) as e:
            found = e.problems if isinstance(e, DataError) else [str(e)]
            problems += [f"data {ds.name}: {p}" for p in found]
            row["status"] = f"{len(found)} problem(s)"
        rows.append(row)
    if not rows:
        problems.append("data: no dataset given (NIH_ROOT, RANZCR_ROOT, TCMTD_LIST or CHESTMNIST)")
    return pd.DataFrame(rows), problems


def planned(ctx: NotebookContext) -> list:
    """Every distinct planned run of notebooks 02-04 (shared runs once), in plan order: the grid's run folders."""
    from ctranscnn.report.grid import grid_runs
    from ctranscnn.report.plan import NOTEBOOKS, planned_runs

    return [g.planned for g in grid_runs([p for nb in NOTEBOOKS for p in planned_runs(ctx, nb)])]


def run_status(run) -> str:
    """finished (reused: same config and data) | resume | to train | to train (config changed | data changed)."""
    from ctranscnn.report.plan import run_state

    state = run_state(run.config)
    return {"finished": "finished", "started": "resume", "new": "to train"}.get(state, f"to train ({state})")


def measure_step(cfg, num_classes: int, warmup: int, repeats: int) -> dict:
    """Seconds per training step and peak memory of `cfg`'s model at its batch and image size on its device
    (ctranscnn.bench's step: forward, the authors' loss, backward, AdamW)."""
    import statistics

    import torch

    from ctranscnn.bench import BenchSpec, build_model, make_step, peak_memory_mb, reset_peak_memory, timed
    from ctranscnn.engine.config import resolve_model_name

    device = "cuda" if cfg.train.device == "cuda" or (cfg.train.device == "auto" and torch.cuda.is_available()) else "cpu"
    spec = BenchSpec(model=resolve_model_name(cfg.model), size=cfg.data.image_size, batch=cfg.train.batch_size,
                     num_classes=num_classes, fast=cfg.train.fast, bf16=cfg.train.amp == "bf16",
                     channels_last=cfg.train.channels_last, reference=False, device=device, warmup=warmup,
                     repeats=repeats, overrides=tuple(sorted(cfg.model.overrides.items())))
    reset_peak_memory(device)  # each row its own model's peak, not the largest so far
    variant = ", ".join(f"{k}={v}" for k, v in spec.overrides)  # the ablation and quirk rows share a model name
    out = {"model": f"{spec.model} ({variant})" if variant else spec.model, "image_size": spec.size,
           "batch": spec.batch, "device": device}
    try:
        model = build_model(spec)
        params = sum(p.numel() for p in model.parameters())
        step = make_step(model, spec)
        for _ in range(warmup):
            step()
        step_s = statistics.median(timed(step, device) for _ in range(repeats))
    except torch.cuda.OutOfMemoryError as e:
        return out | {"params_M": float("nan"), "step_s": float("nan"), "peak_memory_GiB": float("nan"),
                      "error": f"out of memory at batch {spec.batch}: {str(e).splitlines()[0]}"}
    peak = peak_memory_mb(device) / 1024
    del model, step  # free this model before the next one is built
    return out | {"params_M": params / 1e6, "step_s": step_s, "peak_memory_GiB": peak, "error": ""}


def model_key(cfg) -> tuple:
    """What decides a training step's cost: the model (variant included), image size, batch and speed options."""
    from ctranscnn.engine.config import resolve_model_name

    return (resolve_model_name(cfg.model), tuple(sorted(cfg.model.overrides.items())), cfg.data.image_size,
            cfg.train.batch_size, cfg.train.fast, cfg.train.amp, cfg.train.channels_last)


def estimate_seconds(cfg, sizes: dict[str, int], step_s: float) -> float:
    """Training steps x measured step time, plus validation every epoch and the final val/test passes (best and
    last checkpoints) at EVAL_COST of a training image each."""
    n = {k: min(v, limit) if limit else v for (k, v), limit in
         zip(sizes.items(), (cfg.data.limit_train, cfg.data.limit_val, cfg.data.limit_test))}
    steps = cfg.schedule.epochs * math.ceil(n["train"] / cfg.train.batch_size)
    eval_images = cfg.schedule.epochs * n["val"] + 2 * (n["val"] + n["test"])
    return steps * step_s + eval_images * EVAL_COST * step_s / cfg.train.batch_size


def available_memory_gib(device: str) -> float:
    import torch

    if device == "cuda":
        return torch.cuda.get_device_properties(0).total_memory / 2**30
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30


def preflight(ctx: NotebookContext, warmup: int = 2, repeats: int = 3) -> Preflight:
    from ctranscnn.report.plan import parallel_jobs

    data, problems = check_data(ctx)
    if problems:  # the plan needs every dataset's split; stop before measuring anything
        empty = pd.DataFrame()
        return Preflight(data, pd.DataFrame({"notebook": [], "status": [], "est_s": []}), empty, empty, problems)
    sizes = {r.dataset: {"train": r.train, "val": r.val, "test": r.test} for r in data.itertuples()}
    runs = planned(ctx)
    num_classes = {r.dataset: int(r.classes) for r in data.itertuples()}
    models: dict[tuple, dict] = {}
    for run in runs:  # one measurement per distinct model and step shape (the head's class count hardly matters)
        if model_key(run.config) not in models:
            models[model_key(run.config)] = measure_step(run.config, num_classes[run.dataset], warmup, repeats)
    rows = []
    for run in runs:
        c = run.config
        m = models[model_key(c)]
        rows.append({"notebook": run.notebook, "row": run.label, "dataset": run.dataset, "model": m["model"],
                     "split": run.split, "seed": run.seed, "status": run_status(run),
                     "est_s": estimate_seconds(c, sizes[run.dataset], m["step_s"]),
                     "checkpoint_GiB": m["params_M"] * 1e6 * CHECKPOINT_BYTES_PER_PARAM / 2**30,
                     "run_dir": run.run_dir.name})
    runs_df = pd.DataFrame(rows)
    models_df = pd.DataFrame(list(models.values()))
    for m in models_df.itertuples():
        if m.error:
            problems.append(f"memory: {m.model} at {m.image_size} px: {m.error}")
    todo = runs_df[runs_df["status"] != "finished"]
    need = float(todo["checkpoint_GiB"].sum()) + cache_gib(ctx, runs, sizes)
    ctx.runs_dir.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(ctx.runs_dir).free / 2**30
    device = str(models_df["device"].iloc[0]) if len(models_df) else "cpu"
    peak = float(models_df["peak_memory_GiB"].max()) if len(models_df) else float("nan")
    have = available_memory_gib(device)
    kind = ("peak allocated device memory of one step (torch.cuda.max_memory_allocated)" if device == "cuda" else
            "CPU: peak resident memory of this process (RSS) vs memory available now")
    resources = pd.DataFrame([
        {"what": f"disk under {ctx.runs_dir}: checkpoints of runs still to train (and decode caches)",
         "needed_GiB": need, "available_GiB": free},
        {"what": kind, "needed_GiB": peak, "available_GiB": have},
    ])
    if need > free:
        problems.append(f"disk: the runs still to train need about {need:.1f} GiB under {ctx.runs_dir}, "
                        f"{free:.1f} GiB free; free space or set RUNS_DIR to a larger disk")
    if math.isfinite(peak) and peak > have:
        problems.append(f"memory: one training step needs {peak:.1f} GiB, {have:.1f} GiB available on {device}; "
                        "lower train.batch_size or use a larger device")
    return Preflight(data, runs_df, models_df, resources, problems, parallel_jobs(runs[0].config) if runs else 1)


def cache_gib(ctx: NotebookContext, runs: list, sizes: dict) -> float:
    """Decode caches (data.cache_dir, uint8 3 x H x W per image), once per dataset and image size."""
    seen = {(r.dataset, r.config.data.image_size) for r in runs if r.config.data.cache_dir}
    return sum(sum(sizes[d].values()) * 3 * px * px for d, px in seen) / 2**30


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ctranscnn.report.preflight", description=__doc__.splitlines()[0])
    for name, default in (("profile", "paper"), ("split", "paper"), ("device", "auto"), ("data-dir", "data"),
                          ("nih-root", ""), ("ranzcr-root", ""), ("tcmtd-list", ""), ("authors-lists", ""),
                          ("chestmnist", ""), ("nih-missing", "error"), ("runs-dir", "runs"),
                          ("results-dir", "results"), ("figures-dir", "figures")):
        p.add_argument(f"--{name}", default=default)
    p.add_argument("--seeds", default="0 1 2", help="as reproduce.sh's SEEDS")
    p.add_argument("--dry-run", action="store_true", help="the plan of DRY_RUN=1")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per model")
    p.add_argument("--repeats", type=int, default=3, help="timed steps per model (median)")
    p.add_argument("--force", action="store_true", help="report problems but exit 0 (proceed anyway)")
    a = p.parse_args(argv)
    ctx = NotebookContext.from_params(
        notebook="00_preflight", profile=a.profile, split=a.split, seeds=[int(s) for s in a.seeds.replace(",", " ").split()],
        device=a.device, data_dir=a.data_dir, nih_root=a.nih_root, ranzcr_root=a.ranzcr_root, tcmtd_list=a.tcmtd_list,
        authors_lists=a.authors_lists, runs_dir=a.runs_dir, results_dir=a.results_dir, figures_dir=a.figures_dir,
        chestmnist=a.chestmnist, dry_run=a.dry_run, nih_missing=a.nih_missing)
    result = preflight(ctx, a.warmup, a.repeats)
    title = f"Preflight of PROFILE={a.profile}" + (" (DRY RUN)" if a.dry_run else "")
    text = result.markdown(title)
    out = Path(a.results_dir) / "preflight.md"
    atomic_write_text(out, text + "\n")
    print(text)
    print(f"preflight: written to {out}")
    if result.ok:
        return 0
    verdict = "proceeding anyway (--force)" if a.force else "stopping before any training; fix the problems above or rerun with PREFLIGHT=force"
    print(f"preflight: {len(result.problems)} problem(s): {verdict}", file=sys.stderr)
    return 0 if a.force else 1


if __name__ == "__main__":
    sys.exit(main())

"""Training runs for the notebooks: one folder per (config, data), reused whenever both are unchanged.

A run's folder name carries the first 10 hex digits of its config hash, so the ablation's "full" row and the
comparison's CTransCNN row (same model, data, seed and profile) are one run. A finished run is reused when
its manifest's config hash and dataset hash equal the current ones; an unfinished one is resumed; a finished
one whose data changed (e.g. regenerated phantoms) is moved aside to `<name>.stale` and retrained.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ctranscnn.engine.config import RunConfig, config_hash, load_config, resolve_model_name
from ctranscnn.report.context import DatasetSource, NotebookContext

CHECKPOINT = "best"  # tables report the best-validation-mAUC checkpoint; `last` is in metrics.json too
CHECKPOINT_NOTE = "checkpoint: best validation mean AUC (the last-epoch numbers are in each run's metrics.json)"


def run_config(ctx: NotebookContext, ds: DatasetSource, model: str, seed: int, split: str,
               overrides: Mapping[str, Any] | None = None, extra: Mapping[str, Any] | None = None) -> RunConfig:
    """The engine config of one run: the profile's sizes, this dataset, model overrides (e.g. mmaef=False) and
    `extra` engine settings (e.g. data.fractions)."""
    sets: dict[str, Any] = {
        "profile": ctx.profile, "model.name": model, "data.dataset": ds.kind, "data.root": str(ds.root),
        "data.lists": str(ds.lists or ""), "data.split": split, "train.seed": seed, "train.device": ctx.device,
        "train.out_dir": str(ctx.runs_dir), "train.progress": False, **(extra or {}),
    }
    sets |= {f"model.overrides.{k}": v for k, v in (overrides or {}).items()}
    cfg = load_config(None, sets)
    variant = "".join(f"-{k}={v}" for k, v in sorted((overrides or {}).items()))  # readable; the hash decides
    cfg.train.run_name = (f"{ds.name}_{resolve_model_name(cfg.model)}{variant}_{split}_{ctx.profile}_s{seed}_"
                          f"{config_hash(cfg)[:10]}")
    return cfg


def _data_hash(cfg: RunConfig) -> str:
    from ctranscnn.engine.trainer import data_hashes, dataset_hash, load_data

    return dataset_hash(data_hashes(load_data(cfg)))


def ensure_run(cfg: RunConfig) -> Path:
    """Folder of a finished run of `cfg`: reused if its config and data are unchanged, else (re)trained."""
    from ctranscnn.engine.trainer import resume, train

    run_dir = Path(cfg.train.out_dir) / cfg.train.run_name
    manifest_path = run_dir / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        same_config = manifest.get("config_hash") == config_hash(cfg)
        same_data = manifest.get("dataset", {}).get("hash") == _data_hash(cfg)
        if same_config and same_data and manifest.get("status") == "finished":
            print(f"reusing {run_dir}")
            return run_dir
        if same_config and same_data:
            print(f"resuming {run_dir}")
            resume(run_dir, {"train.progress": False, "data.root": cfg.data.root, "data.lists": cfg.data.lists})
            return run_dir
        stale = run_dir.with_name(run_dir.name + ".stale")
        print(f"{run_dir}: {'data' if same_config else 'config'} changed; moving it to {stale} and retraining")
        shutil.rmtree(stale, ignore_errors=True)
        run_dir.rename(stale)
    elif (run_dir / "config.yaml").exists():  # killed before its first manifest was written
        print(f"resuming {run_dir}")
        resume(run_dir, {"train.progress": False, "data.root": cfg.data.root, "data.lists": cfg.data.lists})
        return run_dir
    print(f"training {run_dir}")
    train(cfg)
    return run_dir


def parallel_jobs(cfg: RunConfig) -> int:
    """How many runs to train at once: on CPU with a fixed thread count per run, one run per group of cores
    (a run's numbers do not depend on what trains beside it); otherwise one at a time."""
    import torch

    on_gpu = cfg.train.device == "cuda" or (cfg.train.device == "auto" and torch.cuda.is_available())
    if on_gpu or cfg.train.cpu_threads < 1:
        return 1
    return max(1, (os.cpu_count() or 1) // cfg.train.cpu_threads)


def ensure_runs(cfgs: list[RunConfig], jobs: int | None = None) -> list[Path]:
    """`ensure_run` for every config, up to `jobs` (default: parallel_jobs) trainings at once in worker processes."""
    unique = list({cfg.train.run_name: cfg for cfg in cfgs}.values())  # one worker per run folder
    jobs = min(len(unique), parallel_jobs(unique[0]) if jobs is None else jobs) if unique else 0
    if jobs <= 1:
        done = {cfg.train.run_name: ensure_run(cfg) for cfg in unique}
    else:
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            done = dict(zip((cfg.train.run_name for cfg in unique), pool.map(ensure_run, unique)))
    return [done[cfg.train.run_name] for cfg in cfgs]


@dataclass
class Run:
    """A finished run folder, read back for tables and figures (no model needed)."""

    path: Path
    manifest: dict = field(repr=False)
    metrics: dict = field(repr=False)

    @classmethod
    def load(cls, path: str | Path) -> "Run":
        path = Path(path)
        return cls(path, json.loads((path / "manifest.json").read_text()), json.loads((path / "metrics.json").read_text()))

    @property
    def classes(self) -> list[str]:
        return list(self.manifest["classes"])

    @property
    def model(self) -> str:
        return self.manifest["model"]

    @property
    def seed(self) -> int:
        return int(self.manifest["seed"])

    @cached_property
    def history(self) -> pd.DataFrame:
        return pd.read_csv(self.path / "history.csv")

    def test_metrics(self, which: str = CHECKPOINT) -> dict:
        return self.metrics[which]["test"]

    def predictions(self, split: str = "test", which: str = CHECKPOINT) -> tuple[np.ndarray, np.ndarray]:
        from ctranscnn.engine.evaluation import read_predictions

        suffix = "" if which == "best" else f"_{which}"
        return read_predictions(self.path / f"predictions_{split}{suffix}.csv", self.classes)

    def summary_row(self, which: str = CHECKPOINT) -> dict:
        """Test metrics (percent) with the mean-AUC bootstrap CI, wall time and throughput."""
        m = self.test_metrics(which)
        lo, hi = m.get("ci95", {}).get("mAUC", [np.nan, np.nan])
        row = {"model": self.model, "seed": self.seed, "checkpoint": which, "epoch": self.metrics[which]["epoch"]}
        row |= {k: m[k] for k in ("mAUC", "mAP", "CP", "CR", "CF1", "OP", "OR", "OF1")}
        row |= {"mAUC_ci_lo": lo, "mAUC_ci_hi": hi, "train_s": self.manifest["wall_time_s"],
                "images_per_s": self.manifest["images_per_s"], "device": self.manifest["device"]}
        return row

    def per_class_auc(self, which: str = CHECKPOINT) -> pd.Series:
        return pd.Series(self.test_metrics(which)["per_class_auc"], index=self.classes, dtype=float)

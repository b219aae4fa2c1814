"""The run folder: its layout, its writers and its one reader. Nothing else spells out a run file's name.

    <run>/config.yaml                 the resolved RunConfig (rewritten when a run is resumed)
    <run>/manifest.json               status, provenance, data hashes, sizes, timing, final metrics summary
    <run>/history.{csv,json}          one row per epoch: loss, learning rate, validation metrics
    <run>/checkpoints/{best,last}.pt  resumable state (best: highest validation mean AUC); .json sidecars
    <run>/predictions_{val,test}.csv  per-image logits and probabilities of the best checkpoint
    <run>/predictions_{val,test}_last.csv   the same for the last checkpoint
    <run>/metrics.json                val/test metrics of both checkpoints, tuned thresholds, CIs
    <run>/splits/                     membership files with SHA-256 (ctranscnn.data.splits.save_split_files)
    <run>/evaluation/<which>_<split>.{csv,json}   later re-evaluations (`python -m ctranscnn evaluate`)
    <run>/.lock                       held (flock) by the process training in the folder (engine.runlock)

Everything a table needs is recomputable from these files. A `RunDir` is the handle the trainer holds for
the life of a run (every write goes through it, so a lock on the folder or a further status is one place
to add), and the reader the report, `predict`, `evaluate` and `export-onnx` use.
"""
from __future__ import annotations

import json
import math
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import yaml

from ctranscnn.data.records import LabelledImages
from ctranscnn.data.splits import save_split_files
from ctranscnn.data.transforms import PreprocessConfig, decode, normalize
from ctranscnn.engine import checkpoint as ckpt_io
from ctranscnn.engine import runlock
from ctranscnn.engine.config import RunConfig, config_hash, from_dict, resolve_model_name, to_dict
from ctranscnn.engine.evaluation import read_predictions, write_predictions
from ctranscnn.engine.setup import build_model, dataset_hash, git_commit, package_versions
from ctranscnn.engine.slots import placement
from ctranscnn.io import atomic_write_text, write_csv, write_json
from ctranscnn.metrics import METRIC_COLUMNS

if TYPE_CHECKING:
    from ctranscnn.engine.trainer import TrainState

CHECKPOINTS = ("best", "last")  # best: highest validation mean AUC; last: the final (or latest) epoch
SPLITS = ("val", "test")  # the splits a finished run predicts
# manifest statuses; a "running" run whose folder lock no process holds has died (see `RunDir.status`)
RUNNING, FINISHED, FAILED, INTERRUPTED = "running", "finished", "failed", "interrupted"


def run_dir_for(cfg: RunConfig) -> Path:
    """Where a run of `cfg` lives: train.out_dir / (train.run_name or <dataset>_<model>_<profile>_s<seed>)."""
    name = cfg.train.run_name or (f"{cfg.data.dataset}_{resolve_model_name(cfg.model)}_{cfg.profile}"
                                  f"_s{cfg.train.seed}")
    return Path(cfg.train.out_dir) / name


def _check_which(which: str) -> str:
    if which not in CHECKPOINTS:
        raise ValueError(f"checkpoint must be one of {CHECKPOINTS}, got {which!r}")
    return which


class RunDir:
    """One run folder. Paths and writers need nothing on disk; the readers load lazily and cache what they read
    (a reader is for a finished run; the trainer never reads through its own cached properties)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def for_config(cls, cfg: RunConfig) -> "RunDir":
        return cls(run_dir_for(cfg))

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunDir) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    # ---- layout

    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def manifest_file(self) -> Path:
        return self.path / "manifest.json"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.json"

    @property
    def history_csv(self) -> Path:
        return self.path / "history.csv"

    @property
    def history_json(self) -> Path:
        return self.path / "history.json"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    def checkpoint_file(self, which: str = "last") -> Path:
        return self.checkpoint_dir / f"{_check_which(which)}.pt"

    def predictions_file(self, split: str, which: str = "best") -> Path:
        # The best checkpoint's files carry no suffix: they are the ones the tables use.
        return self.path / f"predictions_{split}{'' if _check_which(which) == 'best' else '_' + which}.csv"

    def evaluation_file(self, split: str, which: str = "best", suffix: str = ".json") -> Path:
        return self.path / "evaluation" / f"{_check_which(which)}_{split}{suffix}"

    # ---- state on disk

    def has_checkpoint(self, which: str = "last") -> bool:
        return self.checkpoint_file(which).is_file()

    # ---- writers (the trainer's rank 0)

    def write_config(self, cfg: RunConfig) -> None:
        """config.yaml: the run's settings, from which `train --resume RUN_DIR` starts it."""
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.config_file, yaml.safe_dump(to_dict(cfg), sort_keys=False))

    def start(self, cfg: RunConfig, splits: dict[str, LabelledImages]) -> None:
        """The files written when a run (or its resumption) begins: config and split membership."""
        self.write_config(cfg)
        save_split_files(splits, self.path)

    def save_checkpoint(self, payload: dict, best: bool = False) -> None:
        # best first: a kill in between leaves last.pt one epoch behind, and that epoch is redone.
        if best:
            ckpt_io.save_checkpoint(self.checkpoint_file("best"), payload)
        ckpt_io.save_checkpoint(self.checkpoint_file("last"), payload)

    def write_history(self, rows: list[dict]) -> None:
        write_json(self.history_json, rows)
        write_csv(pd.DataFrame(rows), self.history_csv, float_format="%.6g")

    def write_predictions(self, frame: pd.DataFrame, split: str, which: str = "best") -> Path:
        path = self.predictions_file(split, which)
        write_predictions(frame, path)
        return path

    def write_metrics(self, metrics: dict) -> None:
        write_json(self.metrics_file, metrics)

    def write_manifest(self, status: str, cfg: RunConfig, model_name: str, classes: list[str],
                       splits: dict[str, LabelledImages], hashes: dict[str, str], device: str, state: TrainState,
                       metrics: dict | None = None, error: str | None = None) -> None:
        summary = metrics and {which: {split: {k: metrics[which][split][k] for k in METRIC_COLUMNS} for split in SPLITS}
                               | {"epoch": metrics[which]["epoch"]} for which in CHECKPOINTS if which in metrics}
        write_json(self.manifest_file, {
            "status": status,
            "git_commit": git_commit(),
            "config": to_dict(cfg),
            "config_hash": config_hash(cfg),
            "profile": cfg.profile,
            "model": model_name,
            "classes": list(classes),
            "dataset": {"name": cfg.data.dataset, "split": cfg.data.split,
                        "sizes": {k: len(v) for k, v in splits.items()}, "hash": dataset_hash(hashes),
                        # data.missing=skip: listed images left out of each split (before data.limit_*)
                        "missing": cfg.data.missing,
                        "dropped_missing": {k: v.dropped for k, v in splits.items() if v.dropped}},
            "split_hashes": hashes,
            "seed": cfg.train.seed,
            "packages": package_versions(),
            "device": device,
            "placement": placement(),  # the worker slot: cpu | gpu | ddp (RUN_GPUS) | direct, and its GPUs
            "steps": state.step,
            "epochs_done": state.epochs_done,
            "wall_time_s": round(state.train_seconds, 3),  # training steps only
            "total_wall_time_s": round(state.wall_seconds, 3),  # with evaluation and checkpoints
            "images_per_s": round(state.train_images / state.train_seconds, 2) if state.train_seconds else None,
            "best_epoch": state.best_epoch,
            "best_val_mAUC": state.best_val_mauc if math.isfinite(state.best_val_mauc) else None,
            "final_metrics": summary or None,
            **({"error": error} if error else {}),
        })

    # ---- readers

    def holder(self) -> dict | None:
        """The live process training in this folder ({} if unnamed), or None (see engine.runlock)."""
        return runlock.holder(self.path)

    def status(self) -> str:
        """The manifest's status, except that 'running' with no live process holding the folder's lock is
        'interrupted' (killed, or its machine lost): what `grid status` and `evaluate` go by. '' without a manifest."""
        if not self.manifest_file.is_file():
            return ""
        status = json.loads(self.manifest_file.read_text(encoding="utf-8")).get("status", "")
        return INTERRUPTED if status == RUNNING and self.holder() is None else status

    @cached_property
    def manifest(self) -> dict:
        return json.loads(self.manifest_file.read_text())

    @cached_property
    def metrics(self) -> dict:
        # JSON has no NaN: a metric that was NaN (e.g. no scorable class) is written as null and read back as NaN.
        return _nan_for_null(json.loads(self.metrics_file.read_text()))

    @cached_property
    def history(self) -> pd.DataFrame:
        return pd.read_csv(self.history_csv)

    @cached_property
    def config(self) -> RunConfig:
        """The run's RunConfig, from config.yaml (the checkpoint's copy when the folder has no config file)."""
        if self.config_file.is_file():
            return from_dict(yaml.safe_load(self.config_file.read_text(encoding="utf-8")), str(self.config_file))
        path = self.checkpoint_file("last")
        return from_dict(self.checkpoint("last")["config"], str(path))

    @property
    def classes(self) -> list[str]:
        return list(self.manifest["classes"])

    @property
    def model_name(self) -> str:
        return self.manifest["model"]

    @property
    def seed(self) -> int:
        return int(self.manifest["seed"])

    def checkpoint(self, which: str = "best") -> dict:
        """checkpoints/<which>.pt, loaded once (CPU tensors)."""
        cache = self.__dict__.setdefault("_checkpoints", {})
        if which not in cache:
            path = self.checkpoint_file(which)
            if which == "best" and not path.is_file() and self.has_checkpoint("last"):
                raise FileNotFoundError(f"{path}: no best checkpoint (no epoch had a finite validation AUC); use last")
            cache[which] = ckpt_io.load_checkpoint(path)
        return cache[which]

    def load_model(self, which: str = "best", fast: bool | None = None) -> nn.Module:
        """The run's model on CPU in eval mode with checkpoint `which`'s weights, from the checkpoint alone
        (its config, model name and classes). `fast` defaults to how the run trained (train.fast)."""
        ckpt = self.checkpoint(which)
        cfg = from_dict(ckpt["config"], source=str(self.checkpoint_file(which)))
        model = build_model(cfg, len(ckpt["classes"]), ckpt["model_name"], fast=fast)[0]
        model.load_state_dict(ckpt["model"])
        return model.eval()

    def preprocess(self, which: str = "best") -> PreprocessConfig:
        """The preprocessing the model was trained with (as its checkpoint records it)."""
        return PreprocessConfig.from_dict(self.checkpoint(which)["preprocess"])

    def images(self, paths: list[str | Path], which: str = "best") -> torch.Tensor:
        """Files -> the normalised N x 3 x H x W batch the model was trained on (no flip)."""
        pre = self.preprocess(which)
        return torch.stack([normalize(decode(Path(p), pre), pre) for p in paths])

    def thresholds(self, kind: str = "0.5", which: str = "best") -> np.ndarray:
        """Per-class thresholds: a number for all classes, or 'tuned' (on validation, from metrics.json)."""
        classes = self.classes
        if kind != "tuned":
            return np.full(len(classes), float(kind))
        if not self.metrics_file.is_file():
            raise FileNotFoundError(f"{self.metrics_file}: no tuned thresholds (the run has not finished its evaluation)")
        entry = self.metrics.get(which)
        if not entry:
            raise KeyError(f"{self.metrics_file}: no '{which}' checkpoint metrics")
        return np.array([entry["tuned_thresholds"][c] for c in classes])

    def predictions(self, split: str = "test", which: str = "best") -> tuple[np.ndarray, np.ndarray]:
        """(y_true N x C, fused probabilities N x C) from the run's predictions file."""
        return read_predictions(self.predictions_file(split, which), self.classes)

    def test_metrics(self, which: str = "best") -> dict:
        return self.metrics[which]["test"]

    def summary_row(self, which: str = "best") -> dict[str, Any]:
        """Test metrics (percent) with the mean-AUC bootstrap CI, wall time and throughput."""
        m = self.test_metrics(which)
        lo, hi = m.get("ci95", {}).get("mAUC", [np.nan, np.nan])
        row = {"model": self.model_name, "seed": self.seed, "checkpoint": which, "epoch": self.metrics[which]["epoch"]}
        row |= {k: m[k] for k in METRIC_COLUMNS}
        row |= {"mAUC_ci_lo": lo, "mAUC_ci_hi": hi, "train_s": self.manifest["wall_time_s"],
                "images_per_s": self.manifest["images_per_s"], "device": self.manifest["device"]}
        return row

    def per_class_auc(self, which: str = "best") -> pd.Series:
        return pd.Series(self.test_metrics(which)["per_class_auc"], index=self.classes, dtype=float)


def _nan_for_null(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _nan_for_null(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_for_null(v) for v in obj]
    return math.nan if obj is None else obj


def run_dirs(runs_dir: str | Path) -> list[RunDir]:
    """The run folders (those with a manifest) directly under `runs_dir`, in name order."""
    return [RunDir(p.parent) for p in sorted(Path(runs_dir).glob("*/manifest.json"))]

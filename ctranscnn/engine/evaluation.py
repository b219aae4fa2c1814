"""Inference over a split, per-image prediction files and the metric bundle of a run.

`predictions_<split>.csv` has one row per image: image_id, patient_id, true_<class>, logit_<branch>_<class>
for every branch, prob_<class> (sigmoid of the fused logit). Floats are written with 9 significant digits,
which round-trips float32 exactly, so every metric recomputed from the file equals the one reported.
"""
from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from ctranscnn.data.records import LabelledImages
from ctranscnn.engine.distributed import Dist
from ctranscnn.io import atomic_path
from ctranscnn.metrics import bootstrap_ci, compute_metrics, threshold_metrics

THRESHOLD_KEYS = ("CP", "CR", "CF1", "OP", "OR", "OF1")


@torch.no_grad()
def predict(model: nn.Module, loader: DataLoader, n: int, device: torch.device, dist: Dist,
            autocast=nullcontext, channels_last: bool = False) -> dict[str, np.ndarray]:
    """{branch: N x C logits, 'fused': N x C logits} in dataset order, gathered over all ranks.

    A DistributedSampler pads the last rank's share with repeats of the first images; each image is
    kept once by its dataset index, so the result equals a single-process pass exactly.
    """
    model.eval()
    parts: dict[str, list[np.ndarray]] = {}
    indices: list[np.ndarray] = []
    for x, _, idx in loader:
        x = x.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast():
            branches = model.forward_head(model.forward_features(x))
            branches = {**branches, "fused": model.fuse_logits(branches)}
        for name, z in branches.items():
            parts.setdefault(name, []).append(z.float().cpu().numpy())
        indices.append(idx.numpy())
    local = {name: np.concatenate(v) for name, v in parts.items()}
    local["index"] = np.concatenate(indices)
    gathered = dist.gather(local)
    index = np.concatenate([g["index"] for g in gathered])
    _, first = np.unique(index, return_index=True)  # sorted unique indices, first occurrence of each
    if len(first) != n:
        raise RuntimeError(f"inference covered {len(first)} of {n} images")
    return {name: np.concatenate([g[name] for g in gathered])[first] for name in local if name != "index"}


def sigmoid(z: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-z.astype(np.float64)))).astype(np.float32)


def predictions_frame(records: LabelledImages, outputs: dict[str, np.ndarray]) -> pd.DataFrame:
    cols: dict[str, object] = {
        "image_id": records.image_ids,
        "patient_id": records.patient_ids if records.patient_ids is not None else [""] * len(records),
    }
    for k, c in enumerate(records.classes):
        cols[f"true_{c}"] = records.labels[:, k]
    for branch in (b for b in outputs if b != "fused"):
        for k, c in enumerate(records.classes):
            cols[f"logit_{branch}_{c}"] = outputs[branch][:, k]
    probs = sigmoid(outputs["fused"])
    for k, c in enumerate(records.classes):
        cols[f"prob_{c}"] = probs[:, k]
    return pd.DataFrame(cols)


def write_predictions(frame: pd.DataFrame, path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.9g")


def read_predictions(path, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(y_true N x C, fused probabilities N x C) from a predictions file."""
    frame = pd.read_csv(path, dtype={"image_id": str, "patient_id": str})
    missing = [c for c in classes for col in (f"true_{c}", f"prob_{c}") if col not in frame]
    if missing:
        raise ValueError(f"{path}: missing columns for classes {sorted(set(missing))}")
    return (frame[[f"true_{c}" for c in classes]].to_numpy(np.int64),
            frame[[f"prob_{c}" for c in classes]].to_numpy(np.float64))


def read_branch_logits(path, classes: list[str]) -> dict[str, np.ndarray]:
    """{branch: N x C logits} from a predictions file (the logit_<branch>_<class> columns), in file order."""
    frame = pd.read_csv(path, dtype={"image_id": str, "patient_id": str})
    candidates = {col[len("logit_"):-len(f"_{classes[0]}")] for col in frame
                  if col.startswith("logit_") and col.endswith(f"_{classes[0]}")}
    branches = sorted(b for b in candidates if all(f"logit_{b}_{c}" in frame for c in classes))
    if not branches:
        raise ValueError(f"{path}: no logit_<branch>_<class> columns for every class of {classes}")
    return {b: frame[[f"logit_{b}_{c}" for c in classes]].to_numpy(np.float64) for b in branches}


def split_metrics(y_true: np.ndarray, probs: np.ndarray, single_class: str, thr: float = 0.5,
                  tuned: np.ndarray | None = None, n_boot: int = 0, seed: int = 0,
                  classes: list[str] | None = None) -> dict:
    """compute_metrics at `thr`, CP..OF1 at per-class `tuned` thresholds, bootstrap 95% CIs of the AUCs;
    with `classes`, the skipped (unscorable) classes are named rather than numbered, as run files need."""
    out = compute_metrics(y_true, probs, thr=thr, single_class=single_class)
    if classes is not None:
        out["skipped_classes"] = [classes[i] for i in out["skipped_classes"]]
    out["threshold"] = thr
    if tuned is not None:
        out["tuned"] = {k: v for k, v in threshold_metrics(y_true, probs, tuned).items() if k in THRESHOLD_KEYS}
    if n_boot:
        out["ci95"] = bootstrap_ci(y_true, probs, n_boot=n_boot, seed=seed, single_class=single_class)
    return out

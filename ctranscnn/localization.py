"""How well saliency maps localise findings, scored against bounding boxes (beyond the paper).

Definitions (one map per box: the map explains the box's label on the box's image):
  * binarised map: pixels with value >= `frac` * max (frac = 0.5); an all-zero map selects nothing.
  * peak: the first pixel of maximal value (row-major).
  * pointing game (Zhang et al., 2016; no tolerance): hit when the peak pixel's centre lies in the box.
  * predicted box: bounding box of the 8-connected component of the binarised map that holds the peak
    (Wang et al., 2017 draw boxes around the activated region).
  * IoBB = area(pred box & true box) / area(pred box); IoU = area(&) / area(union). A localisation is correct
    at threshold T when the ratio exceeds T (strictly), T in THRESHOLDS, as in Wang et al. (2017).
  * mIoU: mean over boxes of the pixel IoU between the binarised map and the box's pixels (Saporta et al., 2022).
Boxes come in original image pixels (columns image_id, label, x, y, w, h, orig_w, orig_h, as in
LabelledImages.boxes) and are scaled to the map's size; a map pixel belongs to a box when its centre lies inside.
Summaries are fractions in [0, 1], per class and over all boxes ('overall').

On real NIH data only boxes of images outside the training split may be scored (`held_out_boxes`): the authors'
split trains on 797 of the 880 box images.
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from scipy import ndimage

from ctranscnn.gradcam import gradcam_maps

THRESHOLDS = (0.1, 0.25, 0.5, 0.75, 0.9)
BOX_COLUMNS = ("image_id", "label", "x", "y", "w", "h", "orig_w", "orig_h")


def binarise(cam: np.ndarray, frac: float = 0.5) -> np.ndarray:
    top = cam.max()
    return cam >= frac * top if top > 0 else np.zeros(cam.shape, dtype=bool)


def peak(cam: np.ndarray) -> tuple[int, int]:
    return tuple(int(v) for v in np.unravel_index(np.argmax(cam), cam.shape))


def predicted_box(mask: np.ndarray, at: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) pixel edges of the 8-connected component of `mask` containing pixel `at`."""
    if not mask[at]:
        return None
    components, _ = ndimage.label(mask, structure=np.ones((3, 3), dtype=int))
    rows, cols = np.nonzero(components == components[at])
    return int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1


def box_in_map(box: pd.Series | dict, map_hw: tuple[int, int]) -> tuple[float, float, float, float]:
    """A box from original pixels (x, y, w, h on an orig_w x orig_h image) to (x0, y0, x1, y1) map pixels."""
    sx, sy = map_hw[1] / box["orig_w"], map_hw[0] / box["orig_h"]
    return box["x"] * sx, box["y"] * sy, (box["x"] + box["w"]) * sx, (box["y"] + box["h"]) * sy


def box_mask(xyxy: tuple[float, float, float, float], map_hw: tuple[int, int]) -> np.ndarray:
    """Pixels whose centre lies in [x0, x1) x [y0, y1)."""
    x0, y0, x1, y1 = xyxy
    cy, cx = np.arange(map_hw[0]) + 0.5, np.arange(map_hw[1]) + 0.5
    return ((cy >= y0) & (cy < y1))[:, None] & ((cx >= x0) & (cx < x1))[None, :]


def _area(xyxy) -> float:
    return max(xyxy[2] - xyxy[0], 0.0) * max(xyxy[3] - xyxy[1], 0.0)


def score_map(cam: np.ndarray, xyxy: tuple[float, float, float, float], frac: float = 0.5) -> dict[str, float]:
    """Pointing hit, IoBB and IoU of the predicted box, and pixel IoU of the binarised map, for one box."""
    mask, at = binarise(cam, frac), peak(cam)
    truth = box_mask(xyxy, cam.shape)
    pred = predicted_box(mask, at)
    iobb = iou = 0.0
    if pred is not None:
        inter = _area((max(pred[0], xyxy[0]), max(pred[1], xyxy[1]), min(pred[2], xyxy[2]), min(pred[3], xyxy[3])))
        iobb = inter / _area(pred)
        iou = inter / (_area(pred) + _area(xyxy) - inter)
    union = (mask | truth).sum()
    return {
        "hit": float(truth[at] and mask[at]),
        "iobb": iobb,
        "iou": iou,
        "mask_iou": float((mask & truth).sum() / union) if union else 0.0,
    }


def _check_boxes(boxes: pd.DataFrame) -> None:
    missing = [c for c in BOX_COLUMNS if c not in boxes.columns]
    if missing:
        raise ValueError(f"boxes lack column(s) {missing}; expected {list(BOX_COLUMNS)}")


def score_maps(maps: Sequence[np.ndarray], boxes: pd.DataFrame, frac: float = 0.5) -> pd.DataFrame:
    """Per-box scores: `boxes` with columns hit, iobb, iou, mask_iou added; maps[i] belongs to boxes' row i."""
    _check_boxes(boxes)
    if len(maps) != len(boxes):
        raise ValueError(f"{len(maps)} maps for {len(boxes)} boxes")
    rows = [score_map(np.asarray(cam), box_in_map(box, np.shape(cam)), frac)
            for cam, (_, box) in zip(maps, boxes.iterrows())]
    return pd.concat([boxes.reset_index(drop=True), pd.DataFrame(rows, columns=["hit", "iobb", "iou", "mask_iou"])],
                     axis=1)


def summarise(per_box: pd.DataFrame, thresholds: Sequence[float] = THRESHOLDS) -> pd.DataFrame:
    """Per class (sorted) and 'overall' (all boxes): n, pointing, iobb@T, iou@T (fraction with ratio > T), miou."""
    def row(d: pd.DataFrame) -> dict[str, float]:
        out = {"n": len(d), "pointing": d["hit"].mean()}
        out |= {f"iobb@{t:g}": (d["iobb"] > t).mean() for t in thresholds}
        out |= {f"iou@{t:g}": (d["iou"] > t).mean() for t in thresholds}
        return out | {"miou": d["mask_iou"].mean()}

    table = {label: row(d) for label, d in sorted(per_box.groupby("label"), key=lambda kv: kv[0])}
    table["overall"] = row(per_box)
    return pd.DataFrame.from_dict(table, orient="index").rename_axis("label")


def held_out_boxes(boxes: pd.DataFrame, training_ids: Iterable[str]) -> pd.DataFrame:
    """Boxes whose image is not among the training images (image ids, e.g. LabelledImages.image_ids)."""
    _check_boxes(boxes)
    train = set(training_ids)
    return boxes[~boxes["image_id"].isin(train)].reset_index(drop=True)


def localise(
    model: nn.Module,
    boxes: pd.DataFrame,
    classes: Sequence[str],
    load: Callable[[str], torch.Tensor],
    target: str = "fused",
    batch_size: int = 16,
    frac: float = 0.5,
) -> pd.DataFrame:
    """Grad-CAM of each box's label on its image, scored against the box (see `score_maps`).

    load(image_id) returns the model's input for that image (3 x H x W, preprocessed as in training)."""
    _check_boxes(boxes)
    unknown = sorted(set(boxes["label"]) - set(classes))
    if unknown:
        raise ValueError(f"box label(s) {unknown} are not among the model's classes")
    class_of = {c: i for i, c in enumerate(classes)}
    maps: list[np.ndarray] = []
    for start in range(0, len(boxes), batch_size):
        chunk = boxes.iloc[start:start + batch_size]
        images = torch.stack([load(i) for i in chunk["image_id"]])
        maps.extend(gradcam_maps(model, images, [class_of[c] for c in chunk["label"]], target=target))
    return score_maps(maps, boxes, frac)

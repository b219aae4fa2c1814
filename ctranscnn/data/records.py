"""The one in-memory form of a labelled dataset split, shared by loaders, phantoms, engine and reports."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass
class LabelledImages:
    """Images of one split with their multi-hot labels.

    `labels` is uint8 N x C in the order of `classes`. `patient_ids` is None where the source has
    none (e.g. the authors' list files). `boxes` (optional) has columns
    image_id, label, x, y, w, h, orig_w, orig_h in original pixel coordinates.
    `pixels` (optional) holds the images themselves (uint8 N x H x W or N x H x W x 3) for sources
    that ship arrays instead of files (ChestMNIST .npz); `paths` then name the file they came from.
    """

    dataset: str
    split: str
    classes: list[str]
    image_ids: list[str]
    paths: list[Path]
    labels: np.ndarray
    patient_ids: list[str] | None = None
    boxes: pd.DataFrame | None = field(default=None, repr=False)
    pixels: np.ndarray | None = field(default=None, repr=False)
    # Listed images left out because their files are missing (data.missing=skip): {"images": n, "per_class":
    # {class: n}} for the split this one came from; subsets (take) keep it, as it describes their source.
    dropped: dict | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        n = len(self.image_ids)
        if len(self.paths) != n or self.labels.shape != (n, len(self.classes)):
            raise ValueError(
                f"{self.dataset}/{self.split}: {n} ids, {len(self.paths)} paths, labels "
                f"{self.labels.shape}, {len(self.classes)} classes do not agree"
            )
        if self.patient_ids is not None and len(self.patient_ids) != n:
            raise ValueError(f"{self.dataset}/{self.split}: {len(self.patient_ids)} patient ids for {n} images")
        if self.pixels is not None and len(self.pixels) != n:
            raise ValueError(f"{self.dataset}/{self.split}: {len(self.pixels)} pixel arrays for {n} images")

    def __len__(self) -> int:
        return len(self.image_ids)

    def take(self, indices, split: str) -> "LabelledImages":
        """The images at `indices` (in that order) as a new split named `split`; boxes follow their images."""
        idx = np.asarray(indices, dtype=np.int64)
        ids = [self.image_ids[i] for i in idx]
        boxes = None if self.boxes is None else self.boxes[self.boxes["image_id"].isin(set(ids))].reset_index(drop=True)
        return LabelledImages(
            dataset=self.dataset, split=split, classes=list(self.classes), image_ids=ids,
            paths=[self.paths[i] for i in idx], labels=self.labels[idx],
            patient_ids=None if self.patient_ids is None else [self.patient_ids[i] for i in idx],
            boxes=boxes, pixels=None if self.pixels is None else self.pixels[idx], dropped=self.dropped,
        )

    def sha256(self) -> str:
        """Hash of membership and labels: identifies exactly which images (and labels) a split holds."""
        h = hashlib.sha256()
        h.update("\n".join(self.classes).encode())
        for image_id, row in zip(self.image_ids, self.labels):
            h.update(f"\n{image_id}\t{','.join(map(str, row.tolist()))}".encode())
        return h.hexdigest()

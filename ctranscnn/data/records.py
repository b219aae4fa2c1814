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
    """

    dataset: str
    split: str
    classes: list[str]
    image_ids: list[str]
    paths: list[Path]
    labels: np.ndarray
    patient_ids: list[str] | None = None
    boxes: pd.DataFrame | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        n = len(self.image_ids)
        if len(self.paths) != n or self.labels.shape != (n, len(self.classes)):
            raise ValueError(
                f"{self.dataset}/{self.split}: {n} ids, {len(self.paths)} paths, labels "
                f"{self.labels.shape}, {len(self.classes)} classes do not agree"
            )
        if self.patient_ids is not None and len(self.patient_ids) != n:
            raise ValueError(f"{self.dataset}/{self.split}: {len(self.patient_ids)} patient ids for {n} images")

    def __len__(self) -> int:
        return len(self.image_ids)

    def sha256(self) -> str:
        """Hash of membership and labels: identifies exactly which images (and labels) a split holds."""
        h = hashlib.sha256()
        h.update("\n".join(self.classes).encode())
        for image_id, row in zip(self.image_ids, self.labels):
            h.update(f"\n{image_id}\t{','.join(map(str, row.tolist()))}".encode())
        return h.hexdigest()

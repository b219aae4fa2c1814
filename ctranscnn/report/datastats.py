"""Dataset statistics for the data notebook: sizes, patients, prevalence, label cardinality, leakage."""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from ctranscnn.data.records import LabelledImages


def _row(name: str, parts: list[LabelledImages]) -> dict:
    labels = np.concatenate([p.labels for p in parts])
    known = all(p.patient_ids is not None for p in parts)
    return {
        "split": name,
        "images": len(labels),
        "patients": len({pid for p in parts for pid in p.patient_ids}) if known else np.nan,
        "labels_per_image": float(labels.sum(1).mean()) if len(labels) else np.nan,
        "images_without_label": int((labels.sum(1) == 0).sum()),
        "box_images": sum(int(p.boxes["image_id"].nunique()) for p in parts if p.boxes is not None),
    }


def split_summary(splits: Mapping[str, LabelledImages]) -> pd.DataFrame:
    """One row per split and a total: images, patients (NaN when unknown), labels per image,
    images without any label, images with boxes. A patient in two splits counts once in the total."""
    rows = [_row(name, [s]) for name, s in splits.items()] + [_row("total", list(splits.values()))]
    return pd.DataFrame(rows)


def prevalence(splits: Mapping[str, LabelledImages]) -> pd.DataFrame:
    """Positive images per class and split (+ total), and the percentage of each split's images."""
    classes = next(iter(splits.values())).classes
    counts = pd.DataFrame({name: s.labels.sum(0).astype(int) for name, s in splits.items()}, index=classes)
    counts["total"] = counts.sum(axis=1)
    sizes = pd.Series({name: len(s) for name, s in splits.items()})
    sizes["total"] = sizes.sum()
    percent = (100.0 * counts / sizes).add_suffix(" %")
    return pd.concat([counts, percent], axis=1).rename_axis("class").reset_index()


def cardinality(splits: Mapping[str, LabelledImages]) -> pd.DataFrame:
    """How many images carry 0, 1, 2, ... labels, per split."""
    per_split = {name: pd.Series(s.labels.sum(1)).value_counts() for name, s in splits.items()}
    table = pd.DataFrame(per_split).fillna(0).astype(int).sort_index()
    return table.rename_axis("labels_per_image").reset_index()


def leakage_table(report: Mapping) -> pd.DataFrame:
    """`ctranscnn.data.splits.leakage_report` as rows; unknown counts (no patient ids) say so."""
    rows = [{"pair": pair, "patients_shared": "unknown (no patient ids)" if n is None else n}
            for pair, n in report["patients_shared"].items()]
    boxes = report.get("box_images_in_train")
    rows.append({"pair": "box-annotated images in train", "patients_shared": "n/a" if boxes is None else boxes})
    return pd.DataFrame(rows).rename(columns={"patients_shared": "count"})

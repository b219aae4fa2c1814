"""Dataset statistics of the data notebook, against hand-counted toy splits."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ctranscnn.data.records import LabelledImages
from ctranscnn.report.datastats import cardinality, leakage_table, prevalence, split_summary


def _split(name: str, labels: list[list[int]], patients: list[str] | None, boxes: list[str] = ()) -> LabelledImages:
    ids = [f"{name}{i}.png" for i in range(len(labels))]
    box_df = pd.DataFrame({"image_id": list(boxes), "label": "A", "x": 0, "y": 0, "w": 1, "h": 1,
                           "orig_w": 8, "orig_h": 8}) if boxes else None
    return LabelledImages("toy", name, ["A", "B", "C"], ids, [Path(i) for i in ids],
                          np.array(labels, dtype=np.uint8), patients, box_df)


SPLITS = {
    "train": _split("train", [[1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 1, 1]], ["p1", "p1", "p2", "p3"], ["train0.png"] * 2),
    "test": _split("test", [[0, 1, 0], [1, 0, 0]], ["p3", "p4"]),
}


def test_split_summary_by_hand():
    t = split_summary(SPLITS).set_index("split")
    assert t["images"].tolist() == [4, 2, 6]
    assert t["patients"].tolist() == [3, 2, 4]  # p3 is in both splits, counted once in the total
    assert t.loc["train", "labels_per_image"] == 6 / 4 and t.loc["total", "labels_per_image"] == 8 / 6
    assert t["images_without_label"].tolist() == [1, 0, 1]
    assert t["box_images"].tolist() == [1, 0, 1]  # two boxes on one image


def test_split_summary_unknown_patients_is_nan():
    splits = {"train": _split("train", [[1, 0, 0]], None)}
    assert split_summary(splits)["patients"].isna().all()


def test_prevalence_and_cardinality_by_hand():
    p = prevalence(SPLITS).set_index("class")
    assert p["train"].tolist() == [3, 2, 1] and p["test"].tolist() == [1, 1, 0] and p["total"].tolist() == [4, 3, 1]
    assert p.loc["A", "train %"] == 75.0 and p.loc["C", "total %"] == 100 / 6
    c = cardinality(SPLITS).set_index("labels_per_image")
    assert c.to_dict() == {"train": {0: 1, 1: 1, 2: 1, 3: 1}, "test": {0: 0, 1: 2, 2: 0, 3: 0}}


def test_leakage_table():
    t = leakage_table({"patients_shared": {"train-val": 5, "train-test": None}, "box_images_in_train": 797})
    assert t["count"].tolist() == [5, "unknown (no patient ids)", 797]

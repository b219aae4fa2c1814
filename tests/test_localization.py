"""Localisation scores equal hand-computed values; box filtering by split membership."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctranscnn.data.errors import Problems
from ctranscnn.data.nih import read_boxes
from ctranscnn.localization import (
    THRESHOLDS, binarise, box_in_map, held_out_boxes, localise, predicted_box, score_map, score_maps, summarise,
)

COLUMNS = ["image_id", "label", "x", "y", "w", "h", "orig_w", "orig_h"]
BOX = (2.0, 2.0, 5.0, 5.0)  # map pixels: rows/cols 2, 3, 4 have their centres inside


def blob_map() -> np.ndarray:
    """10 x 10: background 0.2, a 4 x 4 blob of 1.0 at rows/cols 3..6, a separate 0.8 pixel at (0, 9)."""
    cam = np.full((10, 10), 0.2)
    cam[3:7, 3:7] = 1.0
    cam[0, 9] = 0.8
    return cam


def test_blob_scores_by_hand():
    s = score_map(blob_map(), BOX)
    # peak (3, 3) is inside the box; predicted box = blob (3, 3, 7, 7), area 16; overlap with the box 2 x 2 = 4
    assert s["hit"] == 1.0
    assert s["iobb"] == pytest.approx(4 / 16)
    assert s["iou"] == pytest.approx(4 / (16 + 9 - 4))
    # binarised map: 16 blob pixels + the stray pixel; box pixels 9; shared 4
    assert s["mask_iou"] == pytest.approx(4 / (17 + 9 - 4))


def test_peak_outside_and_empty_maps_score_zero():
    cam = np.zeros((10, 10))
    assert score_map(cam, BOX) == {"hit": 0.0, "iobb": 0.0, "iou": 0.0, "mask_iou": 0.0}
    cam[8, 8] = 1.0
    assert score_map(cam, BOX) == {"hit": 0.0, "iobb": 0.0, "iou": 0.0, "mask_iou": 0.0}


def test_binarisation_and_8_connected_component():
    cam = np.array([[1.0, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 0.49]])
    assert binarise(cam).tolist() == [[True, False, False], [False, True, False], [False, False, False]]
    assert predicted_box(binarise(cam), (0, 0)) == (0, 0, 2, 2)  # the diagonal neighbour joins the component
    assert predicted_box(binarise(cam), (2, 2)) is None


def test_boxes_scale_from_original_pixels_per_axis():
    box = {"x": 40, "y": 10, "w": 60, "h": 15, "orig_w": 200, "orig_h": 50}
    assert box_in_map(box, (10, 10)) == pytest.approx((2.0, 2.0, 5.0, 5.0))


def test_summary_per_class_and_overall_by_hand():
    empty = np.zeros((10, 10))
    boxes = pd.DataFrame(
        [("i1", "A", 20, 20, 30, 30, 100, 100), ("i2", "B", 20, 20, 30, 30, 100, 100),
         ("i3", "A", 40, 40, 60, 60, 200, 200)],  # the same box on a 200-px original
        columns=COLUMNS,
    )
    per_box = score_maps([blob_map(), empty, blob_map()], boxes)
    assert per_box["hit"].tolist() == [1.0, 0.0, 1.0]
    table = summarise(per_box)
    assert table.index.tolist() == ["A", "B", "overall"]
    assert table.loc["A", "n"] == 2 and table.loc["overall", "n"] == 3
    assert table.loc["overall", "pointing"] == pytest.approx(2 / 3)
    # IoBB = 0.25 exceeds 0.1 but not 0.25 (strictly greater); IoU = 4/21 = 0.19 exceeds 0.1 only
    assert table.loc["A", "iobb@0.1"] == 1.0 and table.loc["A", "iobb@0.25"] == 0.0
    assert table.loc["A", "iou@0.1"] == 1.0 and table.loc["A", "iou@0.25"] == 0.0
    assert table.loc["overall", "iobb@0.1"] == pytest.approx(2 / 3)
    assert table.loc["overall", "miou"] == pytest.approx(2 * (4 / 22) / 3)
    assert [c for c in table.columns if c.startswith("iou@")] == [f"iou@{t:g}" for t in THRESHOLDS]


def test_held_out_boxes_drop_training_images():
    boxes = pd.DataFrame([("a", "A", 0, 0, 1, 1, 8, 8), ("b", "A", 0, 0, 1, 1, 8, 8), ("b", "B", 0, 0, 1, 1, 8, 8),
                          ("c", "A", 0, 0, 1, 1, 8, 8)], columns=COLUMNS)
    kept = held_out_boxes(boxes, ["a", "x"])
    assert kept["image_id"].tolist() == ["b", "b", "c"] and kept.index.tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="orig_w"):
        held_out_boxes(boxes.drop(columns="orig_w"), [])


def test_mismatched_inputs_are_rejected():
    boxes = pd.DataFrame([("a", "Z", 0, 0, 1, 1, 8, 8)], columns=COLUMNS)
    with pytest.raises(ValueError, match="1 boxes"):
        score_maps([], boxes)
    with pytest.raises(ValueError, match="'Z'"):
        localise(None, boxes, ["A"], lambda i: None)


def test_authors_split_trains_on_797_of_the_880_nih_box_images(shared_dir):
    boxes = read_boxes(shared_dir / "data" / "nih", {}, Problems())
    assert len(boxes) == 984 and boxes["image_id"].nunique() == 880

    def names(split: str) -> set[str]:
        text = (shared_dir / "data" / "authors_splits" / "chest14" / f"add72_chest14_{split}_labels.txt").read_text()
        return {line.split("\t")[0].rsplit("/", 1)[-1] for line in text.splitlines() if line.strip()}

    kept = held_out_boxes(boxes, names("train"))
    assert kept["image_id"].nunique() == 880 - 797
    assert set(kept["image_id"]) <= names("val") | names("test")

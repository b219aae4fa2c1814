"""Phantom images: byte-identical regeneration, boxes on their findings, real layouts read by the loaders."""
from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ctranscnn.cli import main
from ctranscnn.phantom import generate_cxr11, generate_cxr14, generate_tongue, render_cxr14
from ctranscnn.phantom.findings import FINDINGS

SIZE = 48


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["cxr14", "cxr11", "tongue"])
def test_regeneration_is_byte_identical_for_any_worker_count(tmp_path, dataset):
    gen = {"cxr14": generate_cxr14, "cxr11": generate_cxr11, "tongue": generate_tongue}[dataset]
    for name, workers, seed in (("w1", 1, 7), ("w2", 2, 7), ("other", 1, 8)):
        gen(tmp_path / name, n=12, size=SIZE, seed=seed, workers=workers)
    one, two, other = (_hashes(tmp_path / d) for d in ("w1", "w2", "other"))
    assert one == two and len(one) >= 12
    assert other != one  # the seed matters


@pytest.mark.parametrize("finding", sorted(FINDINGS))
def test_box_lies_inside_the_image_and_on_its_finding(finding):
    size = 64
    for index in range(3):
        with_it, boxes = render_cxr14(11, index, patient=index, labels=f"{finding}", size=size)
        without, none = render_cxr14(11, index, patient=index, labels=finding, size=size, omit=(finding,))
        assert none == [] and len(boxes) == 1 and boxes[0][0] == finding
        _, x, y, w, h = boxes[0]
        assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= size and y + h <= size
        diff = np.abs(with_it.astype(float) - without.astype(float))
        inside = diff[y:y + h, x:x + w].sum() / diff.sum()
        assert diff.sum() > 0 and inside > 0.75, f"{finding}: {inside:.2f} of the change inside its box"
        # and the box is not the whole film: the change is local to it
        assert w * h < 0.6 * size * size or finding == "Emphysema"


def test_rendering_depends_on_patient_anatomy():
    a, _ = render_cxr14(0, 0, patient=0, labels="No Finding", size=SIZE)
    b, _ = render_cxr14(0, 0, patient=1, labels="No Finding", size=SIZE)
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 2


def test_layouts_are_read_by_the_real_loaders(tmp_path):
    load_splits = pytest.importorskip("ctranscnn.data.splits", reason="data loaders not present").load_splits
    n = 30
    plan = generate_cxr14(tmp_path / "nih", n=n, size=32, seed=0, workers=1)
    generate_cxr11(tmp_path / "ranzcr", n=n, size=32, seed=0, workers=1)
    parts = generate_tongue(tmp_path / "tongue", n=n, size=32, seed=0, workers=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nih = load_splits("nih", tmp_path / "nih", split="official")
        ranzcr = load_splits("ranzcr", tmp_path / "ranzcr", split="patient")
        tongue = load_splits("list", tmp_path / "tongue", split="paper", lists=tmp_path / "tongue")
    assert sum(map(len, nih.values())) == n
    assert len(nih["test"]) == (plan["split"] == "test").sum()
    labels = np.concatenate([s.labels for s in nih.values()])
    written = pd.read_csv(tmp_path / "nih/Data_Entry_2017.csv")["Finding Labels"]
    assert labels.sum() == sum(len(s.split("|")) for s in written if s != "No Finding")
    boxes = pd.concat([s.boxes for s in nih.values() if s.boxes is not None])
    assert len(boxes) == len((tmp_path / "nih/BBox_List_2017.csv").read_text().splitlines()) - 1
    assert sum(map(len, ranzcr.values())) == n
    table = pd.read_csv(tmp_path / "ranzcr/train.csv")
    assert np.concatenate([s.labels for s in ranzcr.values()]).sum() == table.iloc[:, 1:12].to_numpy().sum()
    assert {k: len(v) for k, v in tongue.items()} == {k: len(v) for k, v in parts.items()}


def test_cli_writes_the_authors_list_format(tmp_path):
    out = tmp_path / "tongue"
    assert main(["phantom", "tongue", "--out", str(out), "--n", "10", "--size", "32", "--workers", "1"]) == 0
    classes = (out / "multi_label_classes.txt").read_text()
    assert not classes.endswith("\n") and classes.split("\n")[-1] == "Yangxu" and len(classes.split("\n")) == 9
    train = (out / "tongue_train.txt").read_text()
    assert not train.endswith("\n")
    path, vec = train.split("\n")[0].split("\t")
    assert len(vec.split(",")) == 9 and Image.open(out / path).size == (32, 32)
    assert Image.open(out / path).mode == "RGB"

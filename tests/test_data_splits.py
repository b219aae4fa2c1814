"""Splits: the authors' lists give the spec's counts, the patient split is leak-free and stratified,
the leakage report counts what it should, split files are traceable by SHA-256."""
from __future__ import annotations

import hashlib
import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import GroupShuffleSplit

from ctranscnn.data.records import LabelledImages
from ctranscnn.data.splits import LeakageWarning, leakage_report, load_splits, save_split_files, stratified_group_split


def spec_table(spec_text: str, section: str) -> dict[str, dict[str, int]]:
    """class -> {train, val, test} from a per-class table of reference_spec.md (the oracle)."""
    body = spec_text.split(f"### {section}", 1)[1].split("\n### ", 1)[0]
    rows = {}
    for m in re.finditer(r"^\| (\d+) \| ([\w\-]+) \| ([\d,]+) \| ([\d,]+) \| ([\d,]+) \|", body, re.M):
        rows[m.group(2)] = {s: int(m.group(3 + i).replace(",", "")) for i, s in enumerate(("train", "val", "test"))}
    return rows


def class_counts(splits) -> dict[str, dict[str, int]]:
    classes = splits["train"].classes
    return {c: {s: int(r.labels[:, i].sum()) for s, r in splits.items()} for i, c in enumerate(classes)}


@pytest.mark.parametrize("section, folder", [("5.3", "chest14"), ("5.2", "chest11")])
def test_authors_lists_give_spec_counts(shared_dir, tmp_path, section, folder):
    expected = spec_table((shared_dir / "docs/reference_spec.md").read_text(), section)
    assert len(expected) in (11, 14)
    with pytest.warns(LeakageWarning):
        splits = load_splits("list", tmp_path, lists=shared_dir / "data/authors_splits" / folder, check_files=False)
    assert class_counts(splits) == expected


def test_real_nih_metadata_leakage(shared_dir):
    nih = shared_dir / "data/nih"
    with pytest.warns(LeakageWarning, match="1,098 train-test"):
        paper = load_splits("nih", nih, "paper", lists=shared_dir / "data/authors_splits/chest14", check_files=False)
    report = leakage_report(paper)
    assert report["patients_shared"]["train-test"] == 1098
    assert [len(set(paper[s].patient_ids)) for s in ("train", "val", "test")] == [13641, 2602, 1332]
    # Oracle for the box count: the box list's image names intersected with the train list's file names.
    boxes = pd.read_csv(nih / "BBox_List_2017.csv.gz", usecols=[0]).iloc[:, 0]
    assert report["box_images_in_train"] == len(set(boxes) & set(paper["train"].image_ids))
    with warnings.catch_warnings():
        warnings.simplefilter("error", LeakageWarning)  # a leak-free split does not warn
        patient = load_splits("nih", nih, "patient", check_files=False, seed=1)
    assert all(v == 0 for v in leakage_report(patient)["patients_shared"].values())
    assert sum(len(r) for r in patient.values()) == 112120


def synthetic(seed: int = 0, patients: int = 400):
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(patients), rng.integers(1, 6, patients))
    prevalence = np.array([0.3, 0.1, 0.05, 0.02, 0.01])
    labels = (rng.random((len(groups), 5)) < prevalence).astype(np.uint8)
    return labels, [f"p{g}" for g in groups]


def max_prevalence_gap(labels, parts) -> float:
    overall = labels.mean(axis=0)
    return max(np.abs(labels[p].mean(axis=0) - overall).max() for p in parts)


def test_patient_split_is_grouped_sized_and_stratified():
    labels, groups = synthetic()
    parts = stratified_group_split(labels, groups, (0.7, 0.1, 0.2), seed=0)
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(labels)))
    members = [{groups[i] for i in p} for p in parts]
    assert not (members[0] & members[1] or members[0] & members[2] or members[1] & members[2])
    np.testing.assert_allclose([len(p) / len(labels) for p in parts], (0.7, 0.1, 0.2), atol=0.02)
    # Better balanced than sklearn's random patient-grouped splits of the same sizes.
    random_gaps = []
    for s in range(20):
        rest, test = next(GroupShuffleSplit(1, test_size=0.2, random_state=s).split(labels, groups=groups))
        sub = [groups[i] for i in rest]
        tr, va = next(GroupShuffleSplit(1, test_size=0.125, random_state=s).split(rest, groups=sub))
        random_gaps.append(max_prevalence_gap(labels, [rest[tr], rest[va], test]))
    assert max_prevalence_gap(labels, parts) < 0.5 * np.mean(random_gaps)


def test_patient_split_is_seeded():
    labels, groups = synthetic()
    a = stratified_group_split(labels, groups, (0.7, 0.1, 0.2), seed=5)
    b = stratified_group_split(labels, groups, (0.7, 0.1, 0.2), seed=5)
    c = stratified_group_split(labels, groups, (0.7, 0.1, 0.2), seed=6)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def records(split: str, ids: list[str], patients: list[str] | None, boxes=None) -> LabelledImages:
    labels = np.eye(2, dtype=np.uint8)[np.arange(len(ids)) % 2]
    return LabelledImages("toy", split, ["A", "B"], ids, [f"{i}.png" for i in ids], labels, patients, boxes)


def test_leakage_report_counts_by_hand():
    boxes = pd.DataFrame({"image_id": ["t0", "t0", "t3"], "label": ["A"] * 3, "x": 0.0, "y": 0.0, "w": 1.0,
                          "h": 1.0, "orig_w": 8, "orig_h": 8})
    splits = {
        "train": records("train", ["t0", "t1", "t2", "t3"], ["a", "a", "b", "c"], boxes),
        "val": records("val", ["v0", "v1"], ["c", "d"]),
        "test": records("test", ["s0", "s1"], ["a", "e"]),
    }
    assert leakage_report(splits) == {
        "patients_shared": {"train-val": 1, "train-test": 1, "val-test": 0}, "box_images_in_train": 2}
    splits["val"].patient_ids = None
    assert leakage_report(splits)["patients_shared"] == {"train-val": None, "train-test": 1, "val-test": None}


def test_split_files_hash_and_read_back(tmp_path):
    splits = {s: records(s, [f"{s}_{i}.png" for i in range(3)], None) for s in ("train", "val", "test")}
    digests = save_split_files(splits, tmp_path)
    folder = tmp_path / "splits"
    for name, digest in digests.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    assert json.loads((folder / "sha256.json").read_text()) == digests
    with pytest.warns(LeakageWarning):
        back = load_splits("list", tmp_path, lists=folder, check_files=False)
    for s in splits:
        assert back[s].image_ids == splits[s].image_ids and back[s].sha256() == splits[s].sha256()

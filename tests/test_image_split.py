"""The image-level split (the authors' protocol for any dataset): shares, stratification, seeding, and a leakage
report that shows the patients it shares, checked against set intersections computed here."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from ctranscnn.data.records import LabelledImages
from ctranscnn.data.splits import LeakageWarning, leakage_report, load_splits, save_split_files
from ctranscnn.phantom.cxr14 import plan_cxr14

N = 3000


def write_metadata(root: Path, n: int = N) -> pd.DataFrame:
    """An NIH Data_Entry file (no images: splits are read with check_files=False) from the cxr14 phantom's plan."""
    plan = plan_cxr14(n, seed=1)
    entry = pd.DataFrame({"Image Index": [f"{p + 1:08d}_{f:03d}.png" for p, f in zip(plan.patient, plan.followup)],
                          "Finding Labels": plan.labels, "Patient ID": plan.patient + 1})
    root.mkdir(parents=True, exist_ok=True)
    entry.to_csv(root / "Data_Entry_2017.csv", index=False)
    return entry


def image_splits(root: Path, **kwargs) -> dict[str, LabelledImages]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LeakageWarning)
        return load_splits("nih", root, "image", check_files=False, **kwargs)


def max_prevalence_gap(labels: np.ndarray, parts: list[np.ndarray]) -> float:
    overall = labels.mean(axis=0)
    return max(np.abs(labels[p].mean(axis=0) - overall).max() for p in parts)


def test_image_split_has_the_authors_shares_and_is_stratified(tmp_path):
    entry = write_metadata(tmp_path)
    splits = image_splits(tmp_path)
    ids = [i for s in splits.values() for i in s.image_ids]
    assert sorted(ids) == sorted(entry["Image Index"])  # a partition of every image
    np.testing.assert_allclose([len(splits[s]) / N for s in ("train", "val", "test")], (0.9, 0.07, 0.03), atol=0.005)
    # Better balanced than random image splits of the same sizes (sklearn), class by class.
    labels = np.concatenate([s.labels for s in splits.values()])
    cut = np.cumsum([len(s) for s in splits.values()])
    ours = max_prevalence_gap(labels, np.split(np.arange(N), cut[:-1]))
    random_gaps = []
    for seed in range(10):
        rest, test = train_test_split(np.arange(N), test_size=len(splits["test"]), random_state=seed)
        train, val = train_test_split(rest, test_size=len(splits["val"]), random_state=seed)
        random_gaps.append(max_prevalence_gap(labels, [train, val, test]))
    assert ours < 0.5 * np.mean(random_gaps)


def test_image_split_leaks_patients_and_says_how_many(tmp_path):
    entry = write_metadata(tmp_path)
    with pytest.warns(LeakageWarning, match=r"image split of nih is image-level and leaks patients: [\d,]+ train-val"):
        splits = load_splits("nih", tmp_path, "image", check_files=False)
    patient = dict(zip(entry["Image Index"], entry["Patient ID"].astype(str)))
    members = {s: {patient[i] for i in r.image_ids} for s, r in splits.items()}
    expected = {f"{a}-{b}": len(members[a] & members[b]) for a, b in (("train", "val"), ("train", "test"),
                                                                        ("val", "test"))}
    assert leakage_report(splits)["patients_shared"] == expected
    assert expected["train-test"] > 0.5 * len(members["test"])  # most test patients also have train images


def test_image_split_is_seeded_and_takes_given_shares(tmp_path):
    write_metadata(tmp_path, 1000)
    a, b, c = (image_splits(tmp_path, seed=s) for s in (4, 4, 5))
    assert all(a[s].image_ids == b[s].image_ids for s in a)
    assert any(a[s].image_ids != c[s].image_ids for s in a)
    halves = image_splits(tmp_path, fractions=(0.5, 0.25, 0.25))
    assert [len(halves[s]) for s in ("train", "val", "test")] == [500, 250, 250]
    findings = image_splits(tmp_path, findings_only=True)
    assert all(r.labels.any(axis=1).all() for r in findings.values())


def test_image_split_pools_a_list_dataset(tmp_path):
    rng = np.random.default_rng(0)
    classes = ["a", "b", "c"]
    given = {s: LabelledImages("list", s, classes, [f"{s}/img_{i}.png" for i in range(k)],
                               [Path(f"{s}/img_{i}.png") for i in range(k)],
                               (rng.random((k, 3)) < 0.3).astype(np.uint8))
             for s, k in (("train", 60), ("val", 20), ("test", 20))}
    save_split_files(given, tmp_path)
    with pytest.warns(LeakageWarning, match="image split of list .* no patient ids"):
        splits = load_splits("list", tmp_path, "image", lists=tmp_path / "splits", check_files=False,
                             fractions=(0.6, 0.2, 0.2))
    label_of = {i: row.tolist() for r in given.values() for i, row in zip(r.image_ids, r.labels)}
    got = {i: row.tolist() for r in splits.values() for i, row in zip(r.image_ids, r.labels)}
    assert got == label_of and [len(splits[s]) for s in ("train", "val", "test")] == [60, 20, 20]
    assert splits["test"].image_ids != given["test"].image_ids  # re-split, not the lists' own split

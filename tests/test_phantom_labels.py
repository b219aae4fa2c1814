"""cxr14/cxr11/tongue phantom label structure against the real statistics (labels only: no images drawn)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctranscnn.phantom.cxr11 import CLASSES as CXR11_CLASSES, COUNTS, TOTAL, plan_cxr11
from ctranscnn.phantom.cxr14 import Cxr14Config, _multi_hot, plan_cxr14
from ctranscnn.phantom.nih_stats import NIH_CLASSES, NO_FINDING, TABLES, derive, load_tables
from ctranscnn.phantom.tongue import CLASSES as TONGUE_CLASSES, PINGHE, plan_tongue

N = 20_000


def _bound(p: np.ndarray, n: int, repeat: float) -> np.ndarray:
    """5 standard errors, inflated by the design effect (1 + r) / (1 - r) of follow-ups repeating labels."""
    return 5 * np.sqrt(p * (1 - p) / n * (1 + repeat) / (1 - repeat)) + 1e-4


def test_committed_tables_equal_a_fresh_derivation(shared_dir):
    fresh = derive(shared_dir / "data/nih/Data_Entry_2017_v2020.csv.gz")
    for name, frame in fresh.items():
        committed = pd.read_csv(TABLES / f"{name}.csv", keep_default_na=False)
        if name == "nih_scalars":
            np.testing.assert_allclose(committed["value"], frame["value"], rtol=1e-5)
        else:
            pd.testing.assert_frame_equal(committed, frame.reset_index(drop=True), check_dtype=False)
    assert fresh["nih_label_combinations"]["count"].sum() == 112_120
    assert fresh["nih_images_per_patient"]["patients"].sum() == 30_805


@pytest.mark.parametrize("abnormal_only", [False, True])
def test_cxr14_prevalence_and_top_pairs_match_the_nih_table(abnormal_only):
    t = load_tables()
    hot, probs = t.multi_hot(), t.combo_probs.copy()
    if abnormal_only:
        probs[np.asarray(t.combos) == NO_FINDING] = 0
        probs /= probs.sum()
    plan = plan_cxr14(N, seed=3, cfg=Cxr14Config(abnormal_only=abnormal_only))
    got = _multi_hot(plan["labels"])
    repeat = t.scalars["repeat_prob_abnormal" if abnormal_only else "repeat_prob_all"]
    expected = probs @ hot
    assert np.all(np.abs(got.mean(0) - expected) < _bound(expected, N, repeat))
    assert (plan["labels"] == NO_FINDING).any() != abnormal_only
    effusion = NIH_CLASSES.index("Effusion")
    for other in ("Atelectasis", "Infiltration"):
        j = NIH_CLASSES.index(other)
        pair = probs @ (hot[:, effusion] & hot[:, j])
        assert abs((got[:, effusion] & got[:, j]).mean() - pair) < _bound(pair, N, repeat)


def test_real_nih_marginals_are_recovered_from_the_table():
    # Oracle independent of the sampler: the official NIH per-class totals (spec 5.3) over 112,120 images.
    t = load_tables()
    totals = np.array([11559, 2776, 4667, 2303, 13317, 2516, 1686, 227, 19894, 5782, 6331, 3385, 1431, 5302])
    np.testing.assert_allclose(t.combo_probs @ t.multi_hot() * 112_120, totals, rtol=1e-9)


def test_cxr14_patients_follow_ups_and_patient_wise_lists():
    plan = plan_cxr14(5000, seed=0)
    per_patient = plan.groupby("patient").size()
    assert per_patient.max() <= Cxr14Config().max_images_per_patient
    assert 2.0 < per_patient.mean() < 4.5  # NIH: 3.64 images per patient (uncapped)
    assert plan.groupby("patient")["split"].nunique().max() == 1
    assert 0.1 < (plan["split"] == "test").mean() < 0.3
    for _, g in plan.groupby("patient"):
        assert g["followup"].tolist() == list(range(len(g)))
    given = plan_cxr14(1000, seed=0, patients=100)
    assert len(given) == 1000 and given["patient"].nunique() == 100


def test_label_noise_changes_written_labels_only():
    clean = plan_cxr14(4000, seed=5)
    noisy = plan_cxr14(4000, seed=5, cfg=Cxr14Config(label_noise=0.2))
    assert (clean["labels"] == noisy["labels"]).all()
    a, b = _multi_hot(noisy["labels"]), _multi_hot(noisy["written_labels"])
    dropped = (a & ~b.astype(bool)).sum() / a.sum()
    assert 0.15 < dropped < 0.25


def test_cxr11_class_frequencies_match_ranzcr():
    plan = plan_cxr11(N, seed=1)
    labels = plan[CXR11_CLASSES].to_numpy()
    p = COUNTS / TOTAL
    assert np.all(np.abs(labels.mean(0) - p) < _bound(p, N, 0.5))
    assert labels.any(1).all()  # RANZCR: 24 of 30,083 films without a device
    assert labels[:, :3].sum(1).max() == 1 and labels[:, 3:7].sum(1).max() == 1  # one ETT, one NGT
    assert 1.55 < labels.sum(1).mean() < 1.8  # spec 5.2: 1.68 labels per image


def test_tongue_labels():
    labels = plan_tongue(5000, seed=0)
    assert labels.shape == (5000, len(TONGUE_CLASSES)) and labels.any(1).all()
    assert labels[labels[:, PINGHE] == 1].sum(1).max() == 1  # balanced excludes the others
    assert 0.15 < labels[:, PINGHE].mean() < 0.21
    assert (labels.mean(0) > 0.03).all()

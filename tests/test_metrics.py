"""Metrics against scikit-learn and hand computations (spec section 4, anchors section 6)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score, roc_auc_score

from ctranscnn.metrics import (_weighted_auc_ap, bootstrap_ci, bootstrap_counts, bootstrap_strata,
                               compute_metrics, resampled_metrics, tune_thresholds)


def make(n=200, c=6, seed=0, decimals=None):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < rng.uniform(0.1, 0.5, c)).astype(np.int64)
    s = 1 / (1 + np.exp(-(rng.normal(size=(n, c)) + 1.5 * y - 1)))
    return y, (s.round(decimals) if decimals else s)


def sklearn_threshold_metrics(y, s, thr):
    pred = (s >= thr).astype(int)
    kw = dict(zero_division=0)
    cp, cr = precision_score(y, pred, average="macro", **kw), recall_score(y, pred, average="macro", **kw)
    op, or_ = precision_score(y, pred, average="micro", **kw), recall_score(y, pred, average="micro", **kw)
    return {k: 100 * v for k, v in dict(CP=cp, CR=cr, OP=op, OR=or_).items()}


def authors_ap(y, s):
    """mmcls mean_ap.average_precision restated: mean of precision@rank over positive ranks."""
    ranked = y[np.argsort(-s)]
    hits = np.flatnonzero(ranked == 1)
    return np.mean([(i + 1) / (r + 1) for i, r in enumerate(hits)]) if len(hits) else 0.0


@pytest.mark.parametrize("decimals", [None, 1])  # tie-free, then heavy ties
def test_matches_sklearn_on_random_data(decimals):
    y, s = make(decimals=decimals)
    m = compute_metrics(y, s)
    np.testing.assert_allclose(m["per_class_auc"], 100 * roc_auc_score(y, s, average=None), rtol=1e-12)
    assert m["mAUC"] == pytest.approx(100 * roc_auc_score(y, s, average="macro"), rel=1e-12)
    np.testing.assert_allclose(m["per_class_ap"], 100 * average_precision_score(y, s, average=None), rtol=1e-12)
    assert m["mAP"] == pytest.approx(100 * average_precision_score(y, s, average="macro"), rel=1e-12)
    for k, v in sklearn_threshold_metrics(y, s, 0.5).items():
        assert m[k] == pytest.approx(v, rel=1e-12), k
    assert m["CF1"] == pytest.approx(2 * m["CP"] * m["CR"] / (m["CP"] + m["CR"]), rel=1e-12)
    assert m["OF1"] == pytest.approx(2 * m["OP"] * m["OR"] / (m["OP"] + m["OR"]), rel=1e-12)
    assert m["skipped_classes"] == []
    if decimals is None:  # without ties the authors' AP is the same number
        np.testing.assert_allclose(m["per_class_ap"], [100 * authors_ap(a, b) for a, b in zip(y.T, s.T)], rtol=1e-12)


def test_per_class_thresholds():
    y, s = make(seed=1)
    thr = np.linspace(0.2, 0.7, y.shape[1])
    m = compute_metrics(y, s, thr=thr)
    for k, v in sklearn_threshold_metrics(y, s, thr).items():
        assert m[k] == pytest.approx(v, rel=1e-12), k
    assert m["CP"] != compute_metrics(y, s)["CP"]


def test_hand_built_example():
    # class 0: scores .9 .8 .3 .2 for labels 1 0 1 0; class 1: no predicted positives at 0.5
    y = np.array([[1, 1], [0, 0], [1, 1], [0, 0]])
    s = np.array([[0.9, 0.4], [0.8, 0.1], [0.3, 0.2], [0.2, 0.3]])
    m = compute_metrics(y, s)
    assert m["per_class_auc"] == pytest.approx([75.0, 75.0])  # class 0: 3 of 4 pairs right; class 1: 3 of 4
    assert m["per_class_ap"] == pytest.approx([100 * (1 + 2 / 3) / 2, 100 * (1 + 2 / 3) / 2])
    # class 0: TP 1, FP 1, FN 1; class 1: TP 0, nothing predicted -> precision 0, recall 0
    assert (m["CP"], m["CR"]) == pytest.approx((25.0, 25.0))
    assert m["CF1"] == pytest.approx(25.0)
    assert (m["OP"], m["OR"]) == pytest.approx((50.0, 25.0))
    assert m["OF1"] == pytest.approx(100 * 2 * 0.5 * 0.25 / 0.75)


def test_ties_are_one_step():
    # all four tied: precision 2/4 for both positives (the authors' argsort could give 1/1, 2/2 or 1/3, 2/4 ...)
    m = compute_metrics(np.array([[1], [0], [1], [0]]), np.full((4, 1), 0.7))
    assert m["per_class_ap"] == pytest.approx([50.0])
    assert m["per_class_auc"] == pytest.approx([50.0])


def test_single_class_columns_both_policies():
    y, s = make(n=60, c=4, seed=2)
    y[:, 1] = 0  # no positives
    y[:, 3] = 1  # no negatives
    ok = [0, 2]
    skip = compute_metrics(y, s)
    assert skip["skipped_classes"] == [1, 3]
    assert np.isnan(skip["per_class_auc"][1]) and np.isnan(skip["per_class_auc"][3])
    assert skip["mAUC"] == pytest.approx(100 * roc_auc_score(y[:, ok], s[:, ok], average="macro"), rel=1e-12)
    have_pos = [0, 2, 3]  # AP is defined (100 for class 3) wherever there are positives
    assert skip["per_class_ap"][3] == pytest.approx(100.0)
    assert skip["mAP"] == pytest.approx(100 * average_precision_score(y[:, have_pos], s[:, have_pos]), rel=1e-12)

    fifty = compute_metrics(y, s, single_class="fifty")
    assert fifty["skipped_classes"] == []
    assert (fifty["per_class_auc"][1], fifty["per_class_auc"][3], fifty["per_class_ap"][1]) == (50.0, 50.0, 0.0)
    auc = [roc_auc_score(y[:, k], s[:, k]) for k in ok]
    assert fifty["mAUC"] == pytest.approx(100 * (sum(auc) + 0.5 + 0.5) / 4, rel=1e-12)
    ap = [average_precision_score(y[:, k], s[:, k]) for k in have_pos]
    assert fifty["mAP"] == pytest.approx(100 * sum(ap) / 4, rel=1e-12)  # class 1 scores AP 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns about the single-valued columns
        for k, v in sklearn_threshold_metrics(y, s, 0.5).items():  # thresholded metrics use every class
            assert skip[k] == pytest.approx(v, rel=1e-12) and fifty[k] == skip[k], k


def test_weighted_auc_equals_sklearn_with_sample_weight():
    y, s = make(n=80, c=1, seed=3, decimals=1)
    w = np.random.default_rng(3).integers(0, 4, size=(5, 80)).astype(float)
    got = _weighted_auc_ap(y[:, 0], s[:, 0], w)[0]
    want = [roc_auc_score(y[:, 0], s[:, 0], sample_weight=row) for row in w]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert np.isnan(_weighted_auc_ap(np.zeros(4, int), np.arange(4.0), np.ones((1, 4)))[0])[0]


def test_weighted_ap_equals_sklearn_with_sample_weight():
    y, s = make(n=80, c=1, seed=6, decimals=1)  # heavy ties
    w = np.random.default_rng(6).integers(0, 4, size=(5, 80)).astype(float)
    got = _weighted_auc_ap(y[:, 0], s[:, 0], w)[1]
    want = [average_precision_score(y[:, 0], s[:, 0], sample_weight=row) for row in w]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # integer weights = the sample repeated: the package's own AP on the expanded arrays
    idx = np.repeat(np.arange(80), w[0].astype(int))
    assert got[0] == pytest.approx(compute_metrics(y[idx], s[idx])["per_class_ap"][0] / 100, rel=1e-12)
    assert np.isnan(_weighted_auc_ap(np.zeros(4, int), np.arange(4.0), np.ones((1, 4)))[1])[0]


def test_bootstrap_counts_keep_strata_and_label_values():
    y, _ = make(n=120, c=4, seed=7)
    y[:, 3] = 0
    y[5, 3] = 1  # one positive
    y[:, 2] = 1
    y[9, 2] = 0  # one negative
    strata = bootstrap_strata(y)
    assert strata[5] == 3 and strata[9] == 2  # each lone value is its own stratum
    counts = bootstrap_counts(y, 200, seed=3)
    assert counts.shape == (200, 120) and (counts.sum(1) == 120).all()
    for k in np.unique(strata):  # stratum sizes are fixed
        assert (counts[:, strata == k].sum(1) == (strata == k).sum()).all()
    pos = counts @ y
    assert ((pos > 0) & (pos < 120)).all()  # every class keeps both label values
    assert (counts[:, 5] == 1).all() and (counts[:, 9] == 1).all()
    assert (counts == bootstrap_counts(y, 200, seed=3)).all() and (counts != bootstrap_counts(y, 200, seed=4)).any()
    # a stratum of 80 images: each image is drawn ~ Binomial(80, 1/80) times, mean 1 (plain bootstrap inside)
    big = counts[:, strata == np.bincount(strata).argmax()]
    assert big.mean() == pytest.approx(1.0) and 0.8 < big.var() < 1.2


def test_bootstrap_counts_redraw_a_resample_that_loses_a_class(monkeypatch):
    import ctranscnn.metrics as M

    # classes A {a, b}, B {e, f}, C {a, e} (+ 20 images without findings): C owns no stratum (a goes to A, e to B),
    # so a resample drawing b, b and f, f (1 in 16) loses C's positives and must be drawn again
    y = np.zeros((24, 3), dtype=np.int64)
    y[[0, 1], 0] = 1
    y[[2, 3], 1] = 1
    y[[0, 2], 2] = 1
    assert bootstrap_strata(y)[:4].tolist() == [0, 0, 1, 1]
    counts = bootstrap_counts(y, 400, seed=0)
    assert ((counts @ y)[:, 2] > 0).all() and len(counts) == 400
    monkeypatch.setattr(M, "MAX_ROUNDS", 1)  # one round of 400 draws has ~25 such resamples: not enough
    with pytest.raises(ValueError, match="1 rounds gave 3[0-9]{2} of 400 resamples"):
        bootstrap_counts(y, 400, seed=0)


def test_resampled_metrics_equal_sklearn_on_each_resample():
    y, s = make(n=60, c=3, seed=8, decimals=2)
    y[:, 2] = 0  # no positives: out of both means under skip, 50 / 0 under fifty
    counts = bootstrap_counts(y, 20, seed=0)
    for policy in ("skip", "fifty"):
        r = resampled_metrics(y, s, counts, policy)
        for b, row in enumerate(counts):
            idx = np.repeat(np.arange(60), row.astype(int))
            want = compute_metrics(y[idx], s[idx], single_class=policy)
            assert r["mAUC"][b] == pytest.approx(100 * np.mean(
                [roc_auc_score(y[idx, k], s[idx, k]) for k in (0, 1)] + ([0.5] if policy == "fifty" else [])))
            assert r["mAP"][b] == pytest.approx(want["mAP"], rel=1e-12)
            assert r["mAUC"][b] == pytest.approx(want["mAUC"], rel=1e-12)


def test_bootstrap_ci():
    y, s = make(n=300, c=5, seed=4)
    point = compute_metrics(y, s)
    ci = bootstrap_ci(y, s, n_boot=300, seed=1)
    for key in ("mAUC", "mAP"):
        lo, hi = ci[key]
        assert lo < point[key] < hi and hi - lo < 10
    for (lo, hi), p in zip(ci["per_class_auc"], point["per_class_auc"]):
        assert lo <= p <= hi
    assert ci == bootstrap_ci(y, s, n_boot=300, seed=1)
    assert ci["mAUC"] != bootstrap_ci(y, s, n_boot=300, seed=2)["mAUC"]
    y[:, 4] = 0  # never defined: NaN under skip, 50 under fifty
    assert np.isnan(bootstrap_ci(y, s, n_boot=50)["per_class_auc"][4]).all()
    assert bootstrap_ci(y, s, n_boot=50, single_class="fifty")["per_class_auc"][4] == [50.0, 50.0]


@pytest.mark.parametrize("policy", ["skip", "fifty"])
def test_bootstrap_ci_centred_with_a_single_positive_class(policy):
    """Issue 13 item 5: a class with one test positive (scored low, AUC ~2) must stay in every resample's mean.
    Before the fix, the ~37% of resamples without that positive dropped it (skip) or scored it 50 (fifty), and the
    CI was skewed ([66.5, 86.3] around 68.2). Tolerance: the CI's midpoint within 15% of its width of the point."""
    y, s = make(n=300, c=5, seed=4)
    y[:, 4] = 0
    y[7, 4] = 1
    s[7, 4] = 0.05
    point = compute_metrics(y, s, single_class=policy)
    assert point["per_class_auc"][4] < 5
    for key in ("mAUC", "mAP"):
        lo, hi = bootstrap_ci(y, s, n_boot=300, seed=1, single_class=policy)[key]
        assert lo < point[key] < hi
        assert abs((lo + hi) / 2 - point[key]) < 0.15 * (hi - lo), (key, lo, point[key], hi)
        assert hi - lo < 10


def test_tune_thresholds():
    y, s = make(n=150, c=5, seed=5, decimals=2)
    y[:, 4] = 0
    thr = tune_thresholds(y, s)
    assert thr[4] == 0.5
    for k in range(4):
        tuned = f1_score(y[:, k], s[:, k] >= thr[k])
        assert tuned >= f1_score(y[:, k], s[:, k] >= 0.5)
        for t in np.unique(s[:, k]):  # no observed score does better
            assert f1_score(y[:, k], s[:, k] >= t) <= tuned + 1e-12
    # F1 2/3 at t = .9 and at t = .6: the lower threshold wins
    assert tune_thresholds(np.array([[1], [0], [0], [1]]), np.array([[0.9], [0.8], [0.7], [0.6]]))[0] == 0.6


@pytest.mark.parametrize("y, s, kw, msg", [
    (np.zeros((3, 2)), np.zeros((3, 3)), {}, "y_score shape"),
    (np.zeros(3), np.zeros(3), {}, "N x C"),
    (np.array([[0, 2]]), np.zeros((1, 2)), {}, r"found 2 at row 0, column 1"),
    (np.zeros((2, 2)), np.array([[0, np.nan], [0, 0]]), {}, "finite; found nan at row 0, column 1"),
    (np.zeros((2, 2)), np.zeros((2, 2)), {"single_class": "zero"}, "single_class"),
    (np.zeros((2, 2)), np.zeros((2, 2)), {"thr": [0.5, 0.5, 0.5]}, "one value per class"),
])
def test_bad_input_errors(y, s, kw, msg):
    with pytest.raises(ValueError, match=msg):
        compute_metrics(y, s, **kw)

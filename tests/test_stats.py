"""Paired comparisons (ctranscnn.stats) against oracles: a resample-by-resample loop with sklearn, brute-force
DeLong placements, scipy's paired and Welch t intervals, and the bootstrap vs DeLong on a moderate case."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.metrics import average_precision_score, roc_auc_score

from ctranscnn.metrics import bootstrap_counts
from ctranscnn.stats import Replicates, compare, delong, difference, paired_bootstrap, placements


def scored(n, c, seed, noise=1.0, shared=None):
    """Labels and two models' scores; `shared` (N x C) is the score part the two models have in common."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < rng.uniform(0.2, 0.5, c)).astype(np.int64)
    shared = rng.normal(size=(n, c)) if shared is None else shared
    a = 1.2 * y + shared + noise * rng.normal(size=(n, c))
    b = 0.8 * y + shared + noise * rng.normal(size=(n, c))
    return y, a, b


def test_paired_bootstrap_equals_a_loop_over_resamples():
    y, a, b = scored(40, 3, seed=0)
    a = a.round(1)  # ties
    y[:, 2] = 0
    y[3, 2] = 1  # one positive: kept in every resample
    got = paired_bootstrap(y, a, b, n_boot=30, seed=5)
    counts = bootstrap_counts(y, 30, seed=5)  # the same draws; the loop scores each expanded resample with sklearn
    loop = {"mAUC": [], "mAP": []}
    for row in counts:
        idx = np.repeat(np.arange(40), row.astype(int))
        for key, f in (("mAUC", roc_auc_score), ("mAP", average_precision_score)):
            loop[key].append(100 * np.mean([f(y[idx, k], a[idx, k]) - f(y[idx, k], b[idx, k]) for k in range(3)]))
    for key, f in (("mAUC", roc_auc_score), ("mAP", average_precision_score)):
        d = got[key]
        assert d.diff == pytest.approx(100 * (f(y, a, average="macro") - f(y, b, average="macro")), rel=1e-12)
        assert (d.lo, d.hi) == pytest.approx(tuple(np.percentile(loop[key], [2.5, 97.5])), rel=1e-12)
        assert d.se_images == pytest.approx(np.std(loop[key], ddof=1), rel=1e-12)
        assert d.paired and d.method == "bootstrap percentile" and d.seed_diffs == (d.diff,)


def test_pairing_cancels_what_both_models_share():
    rng = np.random.default_rng(1)
    y, a, b = scored(400, 4, seed=1, noise=0.3, shared=2 * rng.normal(size=(400, 4)))
    paired = compare(y, [a], y, [b], paired=True, n_boot=300)["mAUC"]
    unpaired = compare(y, [a], y, [b], paired=False, n_boot=300)["mAUC"]
    assert paired.diff == unpaired.diff > 0
    assert paired.se_images < 0.5 * unpaired.se_images  # independent resamples ignore the shared part
    assert paired.excludes_zero and paired.sign == 1
    same = paired_bootstrap(y, a, 1 / (1 + np.exp(-a)), n_boot=50)  # a monotone map of the same scores
    assert same["mAUC"].diff == 0 and same["mAUC"].lo == same["mAUC"].hi == 0 and not same["mAUC"].excludes_zero
    with pytest.raises(ValueError, match="same test labels"):
        compare(y, [a], y[:-1], [b[:-1]], paired=True, n_boot=10)


def brute_delong(y, a, b):
    """DeLong 1988 restated with explicit loops: psi over every (positive, negative) pair, covariance matrices."""
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    psi = lambda x, z: 1.0 if x > z else 0.5 if x == z else 0.0  # noqa: E731
    v10 = np.array([[np.mean([psi(s[i], s[j]) for j in neg]) for s in (a, b)] for i in pos])
    v01 = np.array([[np.mean([psi(s[i], s[j]) for i in pos]) for s in (a, b)] for j in neg])
    s10, s01 = np.cov(v10, rowvar=False), np.cov(v01, rowvar=False)
    contrast = np.array([1.0, -1.0])
    var = contrast @ s10 @ contrast / len(pos) + contrast @ s01 @ contrast / len(neg)
    return v10, v01, var


def test_delong_equals_brute_force_on_a_tiny_case():
    y = np.array([1, 0, 1, 1, 0, 0, 1, 0, 0])
    a = np.array([0.9, 0.3, 0.7, 0.4, 0.4, 0.1, 0.8, 0.6, 0.2])  # a tie across classes (0.4)
    b = np.array([0.6, 0.5, 0.5, 0.9, 0.2, 0.3, 0.4, 0.7, 0.1])  # a tie across classes (0.5)
    v10, v01, var = brute_delong(y, a, b)
    for k, s in enumerate((a, b)):
        p10, p01 = placements(y, s)
        np.testing.assert_allclose(p10, v10[:, k], rtol=1e-12)
        np.testing.assert_allclose(p01, v01[:, k], rtol=1e-12)
    d = delong(y, a, b)
    assert (d.auc_a, d.auc_b) == pytest.approx((100 * roc_auc_score(y, a), 100 * roc_auc_score(y, b)), rel=1e-12)
    assert d.diff == pytest.approx(d.auc_a - d.auc_b, rel=1e-12)
    assert d.se == pytest.approx(100 * math.sqrt(var), rel=1e-12)
    assert d.z == pytest.approx(d.diff / d.se, rel=1e-12)
    assert d.p_value == pytest.approx(2 * sps.norm.sf(abs(d.z)), rel=1e-12)
    assert (d.lo + d.hi) / 2 == pytest.approx(d.diff) and d.hi - d.lo == pytest.approx(2 * 1.959964 * d.se, rel=1e-6)
    with pytest.raises(ValueError, match="positives and negatives"):
        delong(np.ones(3), a[:3], b[:3])


def test_bootstrap_se_agrees_with_delong_on_one_class():
    y, a, b = scored(600, 1, seed=2, noise=0.8)
    d = delong(y[:, 0], a[:, 0], b[:, 0])
    boot = paired_bootstrap(y, a, b, n_boot=2000, seed=0)["mAUC"]
    assert boot.diff == pytest.approx(d.diff, rel=1e-12)
    assert boot.se_images == pytest.approx(d.se, rel=0.1)
    assert boot.lo == pytest.approx(d.lo, abs=0.25 * d.se) and boot.hi == pytest.approx(d.hi, abs=0.25 * d.se)


def fake(seed, point, boot):
    return Replicates(seed, {"mAUC": point}, {"mAUC": np.asarray(boot, dtype=float)})


def test_seeds_combine_into_the_paired_t_interval_when_images_add_nothing():
    a, b = [81.0, 82.5, 86.0], [79.0, 80.0, 80.5]
    flat = np.zeros(50)  # no test-image variance: the CI must be the paired t interval over seeds
    d = difference([fake(s, x, flat + x) for s, x in enumerate(a)], [fake(s, x, flat + x) for s, x in enumerate(b)],
                   "mAUC")
    want = sps.ttest_rel(a, b).confidence_interval(0.95)
    assert (d.lo, d.hi) == pytest.approx((want.low, want.high), rel=1e-12)
    assert d.diff == pytest.approx(np.mean(a) - np.mean(b)) and d.df == pytest.approx(2)
    assert d.seed_sd == pytest.approx(np.std(np.subtract(a, b), ddof=1))
    # different seeds on the two sides: Welch's interval
    d = difference([fake(s, x, flat + x) for s, x in enumerate(a)],
                   [fake(s + 10, x, flat + x) for s, x in enumerate(b + [78.0])], "mAUC")
    want = sps.ttest_ind(a, b + [78.0], equal_var=False).confidence_interval(0.95)
    assert (d.lo, d.hi) == pytest.approx((want.low, want.high), rel=1e-10)
    assert d.seed_diffs == () and math.isnan(d.seed_sd)


def test_seed_and_image_variance_add_up():
    rng = np.random.default_rng(3)
    a, b = [81.0, 82.5, 86.0], [79.0, 80.0, 80.5]
    noise = [rng.normal(0, 2, 400) for _ in range(6)]
    ra = [fake(s, x, x + e) for s, x, e in zip(range(3), a, noise[:3])]
    rb = [fake(s, x, x + e) for s, x, e in zip(range(3), b, noise[3:])]
    d = difference(ra, rb, "mAUC")
    v_img = np.var(np.mean(noise[:3], axis=0) - np.mean(noise[3:], axis=0), ddof=1)
    v_seed = np.var(np.subtract(a, b), ddof=1) / 3
    df = (v_seed + v_img) ** 2 / (v_seed ** 2 / 2)
    half = sps.t.ppf(0.975, df) * math.sqrt(v_seed + v_img)
    assert (d.lo, d.hi) == pytest.approx((d.diff - half, d.diff + half), rel=1e-12)
    assert d.se_images ** 2 == pytest.approx(v_img) and d.se_seeds ** 2 == pytest.approx(v_seed)
    assert 2 < d.df < 1e3 and d.method.startswith("t, df")
    # one seed on one side: it borrows the other side's seed variance (one component, df k - 1)
    d1 = difference(ra, rb[:1], "mAUC")
    v_seed1 = np.var(a, ddof=1) * (1 / 3 + 1)
    v_img1 = np.var(np.mean(noise[:3], axis=0) - noise[3], ddof=1)
    df1 = (v_seed1 + v_img1) ** 2 / (v_seed1 ** 2 / 2)
    assert d1.diff == pytest.approx(np.mean(a) - b[0])
    assert d1.hi - d1.diff == pytest.approx(sps.t.ppf(0.975, df1) * math.sqrt(v_seed1 + v_img1), rel=1e-12)


def test_unpaired_sides_resample_independently():
    y, a, _ = scored(300, 3, seed=4)
    y2, _, b = scored(250, 3, seed=5)
    d = compare(y, [a], y2, [b], paired=False, n_boot=400)["mAUC"]
    sa = compare(y, [a], y, [np.zeros_like(a)], paired=True, n_boot=400)["mAUC"].se_images
    sb = compare(y2, [b], y2, [np.zeros_like(b)], paired=True, n_boot=400)["mAUC"].se_images
    assert not d.paired
    assert d.se_images == pytest.approx(math.hypot(sa, sb), rel=0.15)  # independent: the variances add

"""Multi-label metrics of the paper, in percent: mean AUC, mAP, CP, CR, CF1, OP, OR, OF1.

Conventions (the authors' mmcls code, ML-GCN):
* A label is predicted positive iff its probability is >= thr (a scalar or one threshold per class).
* CP / CR are the macro means of per-class precision / recall; a class with no predicted (or no true)
  positives contributes 0. CF1 = 2 CP CR / (CP + CR) from the averaged P and R, not the mean of
  per-class F1. OP / OR / OF1 are the same on counts pooled over classes (micro). These use every class.
* AP of a class = mean of precision@rank over the ranks of its positives, scores sorted descending.
  Tied scores are one step, all sharing the precision at the end of the tie block (= sklearn's
  `average_precision_score`; the authors' unstable argsort instead breaks ties arbitrarily). Equal
  to the authors' value whenever a class has no tied scores.
* Single-class policy, for a column with only one label value (AUC undefined):
  'skip' (default): AUC NaN, class index listed in `skipped_classes` and left out of the mean AUC;
  a class without positives (AP undefined) is likewise left out of mAP.
  'fifty': the authors' rule; AUC 50 and, without positives, AP 0, both included in the means.
"""
from __future__ import annotations

import warnings

import numpy as np
from sklearn.metrics import roc_auc_score

POLICIES = ("skip", "fifty")
# The paper's eight summary metrics, in its table order: the one list run files, reports and tables use.
METRIC_COLUMNS = ("mAUC", "mAP", "CP", "CR", "CF1", "OP", "OR", "OF1")


def _check(y_true, y_score, single_class: str = "skip") -> tuple[np.ndarray, np.ndarray]:
    y_true, y_score = np.asarray(y_true), np.asarray(y_score, dtype=np.float64)
    if y_true.ndim != 2 or y_true.shape[0] == 0:
        raise ValueError(f"y_true must be a non-empty N x C array, got shape {y_true.shape}")
    if y_score.shape != y_true.shape:
        raise ValueError(f"y_score shape {y_score.shape} differs from y_true shape {y_true.shape}")
    bad = np.argwhere((y_true != 0) & (y_true != 1))
    if len(bad):
        r, c = bad[0]
        raise ValueError(f"y_true must hold only 0 and 1; found {y_true[r, c].item()!r} at row {r}, column {c}")
    bad = np.argwhere(~np.isfinite(y_score))
    if len(bad):
        r, c = bad[0]
        raise ValueError(f"y_score must be finite; found {y_score[r, c].item()} at row {r}, column {c}")
    if single_class not in POLICIES:
        raise ValueError(f"single_class must be one of {POLICIES}, got {single_class!r}")
    return y_true.astype(np.int64), y_score


def average_precision(y: np.ndarray, s: np.ndarray) -> float:
    """AP of one class (fraction), ties as one step; NaN without positives."""
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    block_end = np.flatnonzero(np.r_[s[1:] != s[:-1], True])  # last index of each block of tied scores
    tp = np.cumsum(y)[block_end]
    precision = tp / (block_end + 1)
    return float(np.sum(np.diff(tp, prepend=0) * precision) / n_pos)


def _ratio(a, b) -> np.ndarray:
    """a / b, 0 where b == 0 (the authors floor b at float32 eps; a is 0 there)."""
    return np.divide(a, b, out=np.zeros(np.shape(a)), where=np.asarray(b) > 0)


def _harmonic(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def threshold_metrics(y_true: np.ndarray, y_score: np.ndarray, thr: float | np.ndarray = 0.5) -> dict:
    """CP, CR, CF1, OP, OR, OF1 (percent) with predictions p >= thr; thr scalar or length C."""
    y_true, y_score = _check(y_true, y_score)
    thr = np.asarray(thr, dtype=np.float64)
    if thr.ndim > 1 or (thr.ndim == 1 and thr.shape != (y_true.shape[1],)):
        raise ValueError(f"thr must be a scalar or have one value per class ({y_true.shape[1]}), got {thr.shape}")
    pred = y_score >= thr
    tp = (pred & (y_true == 1)).sum(0)
    n_pred, n_true = pred.sum(0), y_true.sum(0)
    cp, cr = _ratio(tp, n_pred).mean(), _ratio(tp, n_true).mean()
    op, or_ = _ratio(tp.sum(), n_pred.sum()), _ratio(tp.sum(), n_true.sum())
    out = dict(CP=cp, CR=cr, CF1=_harmonic(cp, cr), OP=op, OR=or_, OF1=_harmonic(op, or_))
    return {k: 100 * float(v) for k, v in out.items()}


def compute_metrics(y_true, y_score, thr: float | np.ndarray = 0.5, single_class: str = "skip") -> dict:
    """All paper metrics (percent) plus per-class AUC / AP (NaN where undefined) and skipped classes.

    Example (one class, scores 0.9 0.8 0.3 for labels 1 0 1): AUC = 1/2 (one of two pos/neg pairs
    ordered right), AP = (1/1 + 2/3) / 2 = 5/6; at thr 0.5 TP 1, FP 1, FN 1 so CP = CR = 50.
    """
    y_true, y_score = _check(y_true, y_score, single_class)
    n_pos = y_true.sum(0)
    single = (n_pos == 0) | (n_pos == len(y_true))
    auc = np.array([np.nan if one else roc_auc_score(y, s) for one, y, s in zip(single, y_true.T, y_score.T)])
    ap = np.array([average_precision(y, s) for y, s in zip(y_true.T, y_score.T)])
    if single_class == "fifty":
        auc, ap = np.where(single, 0.5, auc), np.nan_to_num(ap, nan=0.0)
        auc_mean, ap_mean = auc.mean(), ap.mean()
    else:
        auc_mean = np.nanmean(auc) if not single.all() else np.nan
        ap_mean = np.nanmean(ap) if n_pos.any() else np.nan
    return {
        "mAUC": 100 * float(auc_mean),
        "mAP": 100 * float(ap_mean),
        **threshold_metrics(y_true, y_score, thr),
        "per_class_auc": (100 * auc).tolist(),
        "per_class_ap": (100 * ap).tolist(),
        "skipped_classes": np.flatnonzero(single).tolist() if single_class == "skip" else [],
    }


def _weighted_auc(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> np.ndarray:
    """ROC AUC (fraction) of one class under R weightings w (R x N) of its samples; NaN if one-sided.

    Mann-Whitney with ties counting 1/2: sum over tie blocks of positive weight times
    (negative weight strictly below + half the negative weight in the block), over W+ W-.
    """
    order = np.argsort(s, kind="stable")
    s, y, w = s[order], y[order].astype(bool), w[:, order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    pos = np.add.reduceat(np.where(y, w, 0), starts, axis=1)
    neg = np.add.reduceat(np.where(y, 0, w), starts, axis=1)
    neg_below = np.cumsum(neg, axis=1) - neg
    u = np.sum(pos * (neg_below + 0.5 * neg), axis=1)
    pairs = pos.sum(1) * neg.sum(1)
    return np.divide(u, pairs, out=np.full(len(w), np.nan), where=pairs > 0)


def bootstrap_ci(y_true, y_score, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05,
                 single_class: str = "skip") -> dict:
    """Percentile (1 - alpha) CIs (percent) of the mean AUC and each per-class AUC, resampling images.

    A resample in which a class has one label value counts per policy: 'skip' leaves it out of that
    resample's mean and of the class's CI; 'fifty' scores it 50. A class single-valued in the full
    set stays NaN (skip) or 50 (fifty). Resamples are drawn as per-image counts (one bincount), so the
    AUCs of all resamples come from one sort per class.
    """
    y_true, y_score = _check(y_true, y_score, single_class)
    n, c = y_true.shape
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(n_boot, n)) + n * np.arange(n_boot)[:, None]
    counts = np.bincount(draws.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)
    aucs = np.stack([_weighted_auc(y_true[:, k], y_score[:, k], counts) for k in range(c)], axis=1)
    if single_class == "fifty":
        aucs = np.nan_to_num(aucs, nan=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN classes give NaN CIs on purpose
        mean = np.nanmean(aucs, axis=1)
        q = [100 * alpha / 2, 100 * (1 - alpha / 2)]
        per_class = np.nanpercentile(aucs, q, axis=0).T
        mean_ci = np.nanpercentile(mean, q)
    return {
        "mAUC": (100 * mean_ci).tolist(),
        "per_class_auc": (100 * per_class).tolist(),
        "n_boot": n_boot,
        "alpha": alpha,
        "single_class": single_class,
    }


def tune_thresholds(y_true, y_score) -> np.ndarray:
    """Per-class threshold maximising F1 on (validation) data, for use as compute_metrics(thr=...).

    Candidates are the observed scores (predict p >= t); among equal best F1 the lowest candidate
    wins. A class without positives (F1 0 at any threshold) gets 0.5.
    """
    y_true, y_score = _check(y_true, y_score)
    thr = np.full(y_true.shape[1], 0.5)
    for k, (y, s) in enumerate(zip(y_true.T, y_score.T)):
        if y.sum() == 0:
            continue
        order = np.argsort(-s, kind="stable")
        s, y = s[order], y[order]
        block_end = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
        f1 = 2 * np.cumsum(y)[block_end] / (y.sum() + block_end + 1)  # 2 TP / (n_true + n_pred)
        best = np.flatnonzero(f1 == f1.max())[-1]  # the lowest threshold among ties
        thr[k] = s[block_end[best]]
    return thr

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


TIE_ORDERS = ("step", "optimistic", "pessimistic")


def average_precision_ordered(y: np.ndarray, s: np.ndarray, ties: str = "step") -> float:
    """AP of one class (fraction) with tied scores as one step ('step' = `average_precision`, sklearn's), or broken
    with the class's positives first ('optimistic') or last ('pessimistic'): the highest and lowest AP that any
    tie-breaking sort (the authors' unstable argsort) can give. NaN without positives."""
    if ties not in TIE_ORDERS:
        raise ValueError(f"ties must be one of {TIE_ORDERS}, got {ties!r}")
    y, s = np.asarray(y).astype(np.int64), np.asarray(s, dtype=np.float64)
    if ties == "step" or y.sum() == 0:
        return average_precision(y, s)
    order = np.lexsort((-y if ties == "optimistic" else y, -s))  # by score descending, then the tie-break
    hits = np.flatnonzero(y[order])  # 0-based ranks of the positives
    return float(np.mean(np.arange(1, len(hits) + 1) / (hits + 1)))


def convention_metrics(y_true, y_score) -> dict[str, dict[str, float]]:
    """How the evaluation convention alone moves the numbers of one set of predictions (percent), per
    single-class policy: {'skip' | 'fifty': {'mAUC', 'mAP' (ties one step), 'mAP ties optimistic',
    'mAP ties pessimistic', 'classes in mAUC'}}, and {'ties': {'tied positives %'}}: the share of positives whose
    score equals a negative's score in the same class (what a tie-breaking order can move)."""
    y_true, y_score = _check(y_true, y_score)
    bounds = {t: np.array([average_precision_ordered(y, s, t) for y, s in zip(y_true.T, y_score.T)])
              for t in ("optimistic", "pessimistic")}
    out: dict[str, dict[str, float]] = {}
    for policy in POLICIES:
        m = compute_metrics(y_true, y_score, single_class=policy)
        row = {"mAUC": m["mAUC"], "mAP": m["mAP"]}
        for t, ap in bounds.items():  # a class without positives: left out (skip) or AP 0 (fifty), as in mAP
            ap = np.nan_to_num(ap, nan=0.0) if policy == "fifty" else ap[np.isfinite(ap)]
            row[f"mAP ties {t}"] = 100 * float(ap.mean()) if ap.size else float("nan")
        row["classes in mAUC"] = float(y_true.shape[1] - len(m["skipped_classes"]))
        out[policy] = row
    pos = y_true == 1
    tied = sum(int(np.isin(s[p], s[~p]).sum()) for p, s in zip(pos.T, y_score.T))
    out["ties"] = {"tied positives %": 100 * tied / pos.sum() if pos.any() else float("nan")}
    return out


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


def _weighted_auc_ap(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC AUC and AP (fractions) of one class under R weightings w (R x N) of its samples, from one sort;
    AUC NaN if one-sided, AP NaN without positive weight.

    Over the blocks of tied scores, ascending: AUC is Mann-Whitney with ties counting 1/2, the sum of positive
    weight times (negative weight strictly below + half the negative weight in the block), over W+ W-. AP walks
    the blocks from the top: each block's positive weight times the precision at its end, over W+ (ties as one
    step; a repeated sample ties with itself, so integer weights give the AP of the expanded sample).
    """
    order = np.argsort(s, kind="stable")
    s, y, w = s[order], y[order].astype(bool), w[:, order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    if len(starts) == len(s):  # no ties: every sample is its own block
        total, hit, pos = w, np.flatnonzero(y), w[:, y]
    else:
        total = np.add.reduceat(w, starts, axis=1)
        hit = np.flatnonzero(np.add.reduceat(y.astype(np.int64), starts))
        pos = np.add.reduceat(np.where(y, w, 0), starts, axis=1)[:, hit]
    # Only blocks holding positives add to either sum: work on those columns (a few per cent of them).
    cum_total, total = np.cumsum(total, axis=1)[:, hit], total[:, hit]
    cum_pos = np.cumsum(pos, axis=1)
    w_all, w_pos = w.sum(1), pos.sum(1)
    neg_below_and_half = cum_total - cum_pos - 0.5 * (total - pos)
    pairs = w_pos * (w_all - w_pos)
    auc = np.divide(np.sum(pos * neg_below_and_half, axis=1), pairs, out=np.full(len(w), np.nan), where=pairs > 0)
    above = w_all[:, None] - cum_total + total  # weight in this block and above it
    precision = np.divide(w_pos[:, None] - cum_pos + pos, above, out=np.zeros_like(above), where=above > 0)
    ap = np.divide(np.sum(pos * precision, axis=1), w_pos, out=np.full(len(w), np.nan), where=w_pos > 0)
    return auc, ap


def bootstrap_strata(y_true: np.ndarray) -> np.ndarray:
    """Stratum of each image for `bootstrap_counts`: the class whose rarer label value (positive, or negative
    for a class with more positives than negatives) it holds, rarest such class first; C for an image holding
    no rare value. Every image of stratum k holds k's rarer value, so a resample that keeps the stratum's size
    keeps that value."""
    n, c = y_true.shape
    pos = y_true.sum(0)
    rare_value = (pos <= n - pos).astype(y_true.dtype)
    rare_count = np.minimum(pos, n - pos)
    holds = ((y_true == rare_value) & (rare_count > 0))[:, order := np.argsort(rare_count, kind="stable")]
    return np.where(holds.any(1), order[holds.argmax(1)], c)


MAX_ROUNDS = 100  # rejection rounds of n_boot draws each; a valid resample is almost never rejected


def bootstrap_counts(y_true, n_boot: int, seed: int | np.random.Generator = 0) -> np.ndarray:
    """n_boot x N draw counts per image of a stratified bootstrap that keeps every class scorable.

    Images are resampled with replacement within the strata of `bootstrap_strata` (stratum sizes fixed), and a
    resample in which a class loses a label value it has on the full set (its only positive, say) is drawn
    again. So every resample scores the same classes as the point estimate, and its mean AUC / mAP averages
    the same set: the CI describes the reported number. For one class this is resampling positives and
    negatives separately (the design of DeLong's variance). Raises ValueError if MAX_ROUNDS rounds cannot
    supply n_boot resamples.
    """
    y_true = np.asarray(y_true).astype(np.int64)
    n = len(y_true)
    rng = np.random.default_rng(seed)
    strata = bootstrap_strata(y_true)
    members = np.argsort(strata, kind="stable")  # images grouped by stratum
    sizes = np.bincount(strata)
    size, start = sizes[strata[members]], (np.cumsum(sizes) - sizes)[strata[members]]
    pos = y_true.sum(0)
    kept, have = [], 0
    for _ in range(MAX_ROUNDS):
        draws = members[start + rng.integers(0, size, size=(n_boot, n))] + n * np.arange(n_boot)[:, None]
        counts = np.bincount(draws.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)
        drawn_pos = counts @ y_true
        ok = (((drawn_pos > 0) | (pos == 0)) & ((drawn_pos < n) | (pos == n))).all(1)
        kept.append(counts[ok])
        have += int(ok.sum())
        if have >= n_boot:
            return np.concatenate(kept)[:n_boot]
    raise ValueError(f"bootstrap: {MAX_ROUNDS} rounds gave {have} of {n_boot} resamples that keep every class's "
                     f"label values (class positives {pos.tolist()} of {n} images)")


def resampled_metrics(y_true, y_score, counts: np.ndarray, single_class: str = "skip") -> dict[str, np.ndarray]:
    """Per-resample metrics (percent) for the draw counts of `bootstrap_counts`: 'mAUC' and 'mAP' (R,),
    'per_class_auc' and 'per_class_ap' (R x C, NaN where undefined). The means cover the classes the point
    estimate covers (`compute_metrics`, same policy)."""
    y_true, y_score = _check(y_true, y_score, single_class)
    n, c = y_true.shape
    auc, ap = (np.stack(x, axis=1) for x in zip(*(_weighted_auc_ap(y_true[:, k], y_score[:, k], counts)
                                                   for k in range(c))))
    pos = y_true.sum(0)
    if single_class == "fifty":
        auc, ap = np.where((pos == 0) | (pos == n), 0.5, auc), np.where(pos == 0, 0.0, ap)
    scored, with_pos = (pos > 0) & (pos < n), pos > 0
    nan = np.full(len(counts), np.nan)
    return {
        "mAUC": 100 * (auc[:, scored].mean(1) if single_class == "skip" and scored.any() else
                       auc.mean(1) if single_class == "fifty" else nan),
        "mAP": 100 * (ap[:, with_pos].mean(1) if single_class == "skip" and with_pos.any() else
                      ap.mean(1) if single_class == "fifty" else nan),
        "per_class_auc": 100 * auc,
        "per_class_ap": 100 * ap,
    }


def bootstrap_ci(y_true, y_score, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05,
                 single_class: str = "skip") -> dict:
    """Percentile (1 - alpha) CIs (percent) of the mean AUC, the mAP and each per-class AUC, resampling images
    with `bootstrap_counts` (stratified; every resample scores the classes the point estimate scores). A class
    single-valued on the full set stays NaN (skip) or 50 (fifty)."""
    y_true, y_score = _check(y_true, y_score, single_class)
    r = resampled_metrics(y_true, y_score, bootstrap_counts(y_true, n_boot, seed), single_class)
    q = [100 * alpha / 2, 100 * (1 - alpha / 2)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN classes (and means) give NaN CIs on purpose
        per_class = np.nanpercentile(r["per_class_auc"], q, axis=0).T
        return {
            "mAUC": np.nanpercentile(r["mAUC"], q).tolist(),
            "mAP": np.nanpercentile(r["mAP"], q).tolist(),
            "per_class_auc": per_class.tolist(),
            "n_boot": n_boot,
            "alpha": alpha,
            "single_class": single_class,
            "resampling": "stratified by each class's rarer label value; every class keeps its label values",
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

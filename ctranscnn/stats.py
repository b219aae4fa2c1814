"""Is model A better than model B? Differences in mean AUC and mAP with confidence intervals.

* Test-image sampling: a bootstrap over test images with `ctranscnn.metrics.bootstrap_counts` (stratified; every
  resample keeps each class's label values, so each resample's mean covers the classes the point estimate
  covers). When both models were scored on the same images the comparison is paired: one set of resamples
  for both (and for every seed), so what the images have in common cancels. Two different test sets (e.g. an
  image-level and a patient-level split) are resampled independently.
* Seeds: with several seeds the difference is the mean over A's seeds minus the mean over B's (= the difference
  of the tables' means), and its CI combines both sources of variance (COMBINATION_NOTE):
  SE^2 = V_seed + V_img, CI = diff +- t_df(1 - alpha/2) SE. V_img is the bootstrap variance of that difference
  (every seed scored on the same resamples, since the seeds share the test images); V_seed is the between-seed
  term: sd^2/k of the k per-seed differences when both sides ran the same seeds, else Welch's
  sd_A^2/k_A + sd_B^2/k_B (a side with one seed takes the other side's sd: seed-to-seed spread assumed alike).
  df is Welch-Satterthwaite's (V_img counts as known), so it goes from k - 1 (seed spread dominates) to the
  normal limit (test images dominate). With one seed per side the CI is the bootstrap percentile interval.
  The seed term also holds the seed-specific part of the image-sampling noise, which V_img holds too, so the CI
  errs wide rather than narrow. Null simulations (3 seeds a side, 300 images, 150 repeats) rejected 2% without and
  7% with a real seed effect; subtracting that part (a moment correction) gave 7% and 10%, too narrow with a
  seed effect, so it is not applied. One seed a side: 6% (nominal 5%).
* DeLong et al. (1988): the analytic variance of the AUC difference of two scores of the same images for one
  class, from the structural components (placements) of each positive and negative.
All values are in percent (points).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats as sps

from ctranscnn.metrics import bootstrap_counts, compute_metrics, resampled_metrics

METRICS = ("mAUC", "mAP")
COMBINATION_NOTE = ("CI: 95%, bootstrap over test images (stratified: each resample keeps every class's positives "
                    "and negatives; paired: both models on the same resampled images). With several seeds: "
                    "difference of the seed means +- t * sqrt(V_seed + V_img), V_img the bootstrap variance of that "
                    "difference, V_seed = sd^2/k of the per-seed differences (Welch's sum when the sides ran "
                    "different seeds; a one-seed side borrows the other's sd), Welch-Satterthwaite df")


@dataclass(frozen=True)
class Replicates:
    """One model's test metrics under one seed (percent) and their values on a set of bootstrap resamples."""

    seed: int
    point: dict[str, float]
    boot: dict[str, np.ndarray]


def replicates(y_true, y_score, counts: np.ndarray, seed: int = 0, single_class: str = "skip") -> Replicates:
    """Point mAUC / mAP and their values on the resamples `counts` (from `bootstrap_counts`)."""
    point = compute_metrics(y_true, y_score, single_class=single_class)
    boot = resampled_metrics(y_true, y_score, counts, single_class)
    return Replicates(int(seed), {m: float(point[m]) for m in METRICS}, {m: boot[m] for m in METRICS})


@dataclass(frozen=True)
class Difference:
    """A minus B in one metric (points): the difference of the seed means, its CI and where it came from."""

    metric: str
    diff: float
    lo: float
    hi: float
    seeds_a: tuple[int, ...]
    seeds_b: tuple[int, ...]
    seed_diffs: tuple[float, ...]  # A - B per seed, when both sides ran the same seeds; else ()
    se_images: float  # sqrt(V_img)
    se_seeds: float  # sqrt(V_seed); 0 with one seed per side
    df: float  # of the t quantile; inf for the percentile interval
    paired: bool

    @property
    def sign(self) -> int:
        """+1 if the CI lies above 0, -1 if below, 0 if it contains 0 (or is undefined)."""
        return 1 if self.lo > 0 else -1 if self.hi < 0 else 0

    @property
    def excludes_zero(self) -> bool:
        return self.sign != 0

    @property
    def seed_sd(self) -> float:
        """Sample sd of the per-seed differences (NaN with fewer than two)."""
        return float(np.std(self.seed_diffs, ddof=1)) if len(self.seed_diffs) > 1 else float("nan")

    @property
    def method(self) -> str:
        if not math.isfinite(self.df):
            return "bootstrap percentile" if self.se_seeds == 0 else "normal (seed term 0)"
        return f"t, df {self.df:.1f}"


def _seed_term(a: np.ndarray, b: np.ndarray, seeds_a: tuple, seeds_b: tuple) -> tuple[float, float, tuple]:
    """(V_seed, sum of component^2 / df for Welch-Satterthwaite, per-seed differences) of the module docstring."""
    if sorted(seeds_a) == sorted(seeds_b) and len(set(seeds_a)) == len(seeds_a):
        by_seed = dict(zip(seeds_b, b))
        d = np.array([x - by_seed[s] for s, x in zip(seeds_a, a)])
        if len(d) < 2:
            return 0.0, 0.0, tuple(d.tolist())
        v = d.var(ddof=1) / len(d)
        return float(v), float(v ** 2 / (len(d) - 1)), tuple(d.tolist())
    if max(len(a), len(b)) < 2:
        return 0.0, 0.0, ()
    if min(len(a), len(b)) == 1:  # the side with seeds lends its variance to both: one component
        lender = a if len(a) > 1 else b
        v = lender.var(ddof=1) * (1 / len(a) + 1 / len(b))
        return float(v), float(v ** 2 / (len(lender) - 1)), ()
    ca, cb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    return float(ca + cb), float(ca ** 2 / (len(a) - 1) + cb ** 2 / (len(b) - 1)), ()


def difference(a: Sequence[Replicates], b: Sequence[Replicates], metric: str, alpha: float = 0.05,
               paired: bool = True) -> Difference:
    """A minus B in `metric`, combined over the seeds of each side (module docstring).

    Every Replicates of a side must come from the same resamples (and, if `paired`, both sides from the
    same ones; else from independent resamples of each side's test set): V_img is then simply the variance of
    the difference of the seed-mean replicates."""
    if not a or not b:
        raise ValueError("difference: each side needs at least one run")
    pa, pb = (np.array([r.point[metric] for r in side]) for side in (a, b))
    boot = np.mean([r.boot[metric] for r in a], axis=0) - np.mean([r.boot[metric] for r in b], axis=0)
    diff = float(pa.mean() - pb.mean())
    seeds_a, seeds_b = tuple(r.seed for r in a), tuple(r.seed for r in b)
    v_seed, welch, seed_diffs = _seed_term(pa, pb, seeds_a, seeds_b)
    v_img = float(np.var(boot, ddof=1))
    common = dict(metric=metric, diff=diff, seeds_a=seeds_a, seeds_b=seeds_b, seed_diffs=seed_diffs,
                  se_images=math.sqrt(v_img), se_seeds=math.sqrt(v_seed), paired=paired)
    if max(len(a), len(b)) < 2:
        lo, hi = np.percentile(boot, [100 * alpha / 2, 100 * (1 - alpha / 2)])
        return Difference(lo=float(lo), hi=float(hi), df=math.inf, **common)
    se = math.sqrt(v_seed + v_img)
    df = (v_seed + v_img) ** 2 / welch if welch > 0 else math.inf
    q = float(sps.t.ppf(1 - alpha / 2, df)) if math.isfinite(df) else float(sps.norm.ppf(1 - alpha / 2))
    return Difference(lo=diff - q * se, hi=diff + q * se, df=df, **common)


def compare(y_a, scores_a: Sequence[np.ndarray], y_b, scores_b: Sequence[np.ndarray], paired: bool,
            seeds_a: Sequence[int] | None = None, seeds_b: Sequence[int] | None = None, n_boot: int = 1000,
            seed: int = 0, alpha: float = 0.05, single_class: str = "skip") -> dict[str, Difference]:
    """{'mAUC', 'mAP'}: Difference of A (one N x C score array per seed, labels y_a) minus B.

    paired: both scored on the same images (y_a equal to y_b, rows in the same order): one set of resamples.
    Else each side's test set is resampled independently (its own random stream)."""
    y_a, y_b = np.asarray(y_a), np.asarray(y_b)
    if paired and (y_a.shape != y_b.shape or not np.array_equal(y_a, y_b)):
        raise ValueError(f"compare: a paired comparison needs the same test labels on both sides "
                         f"(shapes {y_a.shape} and {y_b.shape})")
    counts_a = bootstrap_counts(y_a, n_boot, seed)
    counts_b = counts_a if paired else bootstrap_counts(y_b, n_boot, np.random.default_rng([seed, 1]))
    seeds_a = list(seeds_a) if seeds_a is not None else list(range(len(scores_a)))
    seeds_b = list(seeds_b) if seeds_b is not None else list(range(len(scores_b)))
    ra = [replicates(y_a, s, counts_a, k, single_class) for s, k in zip(scores_a, seeds_a, strict=True)]
    rb = [replicates(y_b, s, counts_b, k, single_class) for s, k in zip(scores_b, seeds_b, strict=True)]
    return {m: difference(ra, rb, m, alpha, paired) for m in METRICS}


def paired_bootstrap(y_true, score_a, score_b, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05,
                     single_class: str = "skip") -> dict[str, Difference]:
    """One seed each, same images: {'mAUC', 'mAP'} -> A minus B with its bootstrap percentile CI."""
    return compare(y_true, [score_a], y_true, [score_b], True, n_boot=n_boot, seed=seed, alpha=alpha,
                   single_class=single_class)


@dataclass(frozen=True)
class DeLong:
    """Two correlated AUCs of one class (percent), their difference A - B, its DeLong SE, z, p and CI."""

    auc_a: float
    auc_b: float
    diff: float
    se: float
    z: float
    p_value: float
    lo: float
    hi: float


def placements(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's structural components of one score: V10 per positive (share of negatives it outscores, ties
    1/2) and V01 per negative (share of positives that outscore it); AUC = mean V10 = mean V01.
    From midranks (Sun & Xu 2014): V10_i = (rank in all - rank among positives) / n_neg."""
    y = np.asarray(y).astype(bool)
    s = np.asarray(s, dtype=np.float64)
    m, n = int(y.sum()), int((~y).sum())
    if m == 0 or n == 0:
        raise ValueError(f"DeLong: the class needs positives and negatives (has {m} and {n})")
    ranks = sps.rankdata(s)
    v10 = (ranks[y] - sps.rankdata(s[y])) / n
    v01 = 1 - (ranks[~y] - sps.rankdata(s[~y])) / m
    return v10, v01


def delong(y, score_a, score_b, alpha: float = 0.05) -> DeLong:
    """DeLong's test of AUC(A) - AUC(B) for one class, both scored on the same images:
    Var = (s10_aa + s10_bb - 2 s10_ab) / m + (s01_aa + s01_bb - 2 s01_ab) / n, with s10 (s01) the sample
    covariances (ddof 1) of the positives' (negatives') placements; normal CI and two-sided p."""
    (a10, a01), (b10, b01) = placements(y, score_a), placements(y, score_b)
    var = np.var(a10 - b10, ddof=1) / len(a10) + np.var(a01 - b01, ddof=1) / len(a01)
    diff, se = float(a10.mean() - b10.mean()), float(math.sqrt(var))
    z = diff / se if se > 0 else (0.0 if diff == 0 else math.copysign(math.inf, diff))
    q = float(sps.norm.ppf(1 - alpha / 2))
    return DeLong(100 * float(a10.mean()), 100 * float(b10.mean()), 100 * diff, 100 * se, z,
                  float(2 * sps.norm.sf(abs(z))), 100 * (diff - q * se), 100 * (diff + q * se))

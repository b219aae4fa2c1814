"""Sentences generated from a notebook's numbers: what a table or figure shows, which model is highest and by how
much, whether a difference is resolved given its CI, and the caveats of this data and profile.

Each describer takes the numeric table a section wrote (the CSV, the source of truth) and returns two or three
sentences; `describe(key, table)` picks the describer of a section output key. All values are in percent.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import pandas as pd

PAPER_RECIPE = "ctranscnn_tiny at 224 px, 300 epochs, batch 32"
PAPER_GRID = (14, 14)  # CTransCNN's token grid at 224 px


def _pct(v: float, digits: int = 2) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}%"


def _ci_cols(df: pd.DataFrame, metric: str) -> tuple[str, str] | None:
    """The (lo, hi) columns of `metric`'s 95% CI in a numeric table, if it has them."""
    for lo, hi in ((f"{metric}_ci_lo", f"{metric}_ci_hi"), (f"{metric} CI lo", f"{metric} CI hi")):
        if lo in df.columns and hi in df.columns:
            return lo, hi
    return None


def _paired_cols(df: pd.DataFrame, metric: str) -> tuple[str, str, str] | None:
    """(difference, lo, hi) columns of a paired difference in `metric` to a reference row (report.compare's
    '<metric> minus <reference>' with ' lo' / ' hi'), recognised by name."""
    diff = [c for c in df.columns if c.startswith(f"{metric} ") and ("minus" in c or "diff" in c or "Δ" in c)
            and not c.endswith(("lo", "hi"))]
    for d in diff:
        for lo, hi in ((f"{d} lo", f"{d} hi"), (f"{d} ci_lo", f"{d} ci_hi"), (f"{d}_ci_lo", f"{d}_ci_hi")):
            if lo in df.columns and hi in df.columns:
                return d, lo, hi
    return None


def resolved(lo: float, hi: float) -> str:
    """Whether a 95% CI of a difference excludes 0."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "its CI is not available"
    if lo > 0 or hi < 0:
        return f"its 95% CI [{lo:+.2f}, {hi:+.2f}] excludes 0, so the difference is resolved on this test set"
    return f"its 95% CI [{lo:+.2f}, {hi:+.2f}] includes 0, so this test set does not resolve the difference"


def ranking(df: pd.DataFrame, metric: str = "mAUC", label: str = "model", what: str = "test mean AUC") -> str:
    """Highest row, its margin over the runner-up, and whether that margin is resolved: by the paired CI of the
    difference where the table has one, else by the overlap of the two rows' bootstrap CIs, else by the sd
    over seeds; says so when it has nothing to judge by."""
    d = df.dropna(subset=[metric]).sort_values(metric, ascending=False).reset_index(drop=True)
    if d.empty:
        return f"No row has a {what}."
    top = d.iloc[0]
    text = f"{top[label]} has the highest {what} ({_pct(top[metric])})"
    if len(d) == 1:
        return text + "."
    second, low = d.iloc[1], d.iloc[-1]
    margin = top[metric] - second[metric]
    text += (f", {margin:.2f} points above {second[label]} ({_pct(second[metric])}); the lowest is {low[label]} "
             f"({_pct(low[metric])}), {top[metric] - low[metric]:.2f} points below the top.")
    return text + " " + _resolution(d, metric, label, margin)


def _resolution(d: pd.DataFrame, metric: str, label: str, margin: float) -> str:
    """Whether the top row of `d` (sorted by `metric`, descending) is resolved from the second."""
    top, second = d.iloc[0], d.iloc[1]
    paired, ci = _paired_cols(d, metric), _ci_cols(d, metric)
    if paired is not None:
        diff, lo, hi = paired
        row = second if pd.isna(top[diff]) else top  # the top row may be the reference itself
        return (f"The paired difference of {row[label]} to the reference row ({diff.split(' ', 1)[1]}) is "
                f"{row[diff]:+.2f} points: {resolved(row[lo], row[hi])}.")
    if ci is not None:
        lo, hi = ci
        overlap = top[lo] <= second[hi]
        return (f"Their bootstrap 95% CIs ([{top[lo]:.2f}, {top[hi]:.2f}] and [{second[lo]:.2f}, {second[hi]:.2f}]) "
                + ("overlap, so the order of the two is not resolved (overlap is a conservative test)."
                   if overlap else "do not overlap, so the order of the two is resolved."))
    if f"{metric}_sd" in d.columns and d[f"{metric}_sd"].iloc[:2].notna().any():
        sd = float(np.nanmax(d[f"{metric}_sd"].iloc[:2]))
        return (f"The larger sd over seeds of the two is {sd:.2f} points, "
                + ("more than the margin: not resolved by these seeds." if sd >= margin else "less than the margin."))
    return "This table has no CI and one run per row, so whether the margin is resolved is not known from it."


# ---------------------------------------------------------------- one describer per section output


def describe_summary(t: pd.DataFrame) -> str:
    total = t.set_index("split").loc["total"]
    parts = ", ".join(f"{r.split} {int(r.images):,}" for r in t.itertuples() if r.split != "total")
    text = f"{int(total['images']):,} images ({parts})"
    if "patients" in t.columns and pd.notna(total.get("patients")):
        text += f" of {int(total['patients']):,} patients"
    text += f"; {total['labels_per_image']:.2f} labels per image on average"
    if "images_without_label" in t.columns:
        text += f", {100 * total['images_without_label'] / total['images']:.0f}% with no finding"
    return text + "."


def describe_prevalence(t: pd.DataFrame) -> str:
    d = t.sort_values("total %", ascending=False)
    top, rare = d.iloc[0], d.iloc[-1]
    text = (f"The most frequent class is {top['class']} ({top['total %']:.1f}% of images), the rarest "
            f"{rare['class']} ({rare['total %']:.1f}%).")
    if "test" in t.columns:
        empty = t.loc[t["test"] == 0, "class"].tolist()
        one = len(empty) == 1
        text += (f" {', '.join(empty)} {'has' if one else 'have'} no positive test image, so {'its' if one else 'their'}"
                 " test AUC cannot be computed." if empty else " Every class has positive test images.")
    return text


def describe_prevalence_by_split(t: pd.DataFrame) -> str:
    splits = [c for c in ("train %", "val %", "test %") if c in t.columns]
    gaps = t[splits].max(axis=1) - t[splits].min(axis=1)
    worst = t.loc[gaps.idxmax()]
    return (f"Class shares agree across the splits within {gaps.max():.1f} percentage points; the largest gap is "
            f"{worst['class']} (" + ", ".join(f"{c[:-2]} {worst[c]:.1f}%" for c in splits) + ").")


def describe_cardinality(t: pd.DataFrame) -> str:
    splits = [c for c in t.columns if c != "labels_per_image"]
    counts = t[splits].sum(axis=1)
    n = counts.sum()
    multi = counts[t["labels_per_image"] > 1].sum()
    return (f"{100 * counts[t['labels_per_image'] == 0].sum() / n:.0f}% of images carry no label and "
            f"{100 * multi / n:.0f}% carry more than one (up to {int(t['labels_per_image'].max())}): a multi-label task.")


def describe_leakage(t: pd.DataFrame) -> str:
    pairs = t[t["pair"].str.contains("-") & ~t["pair"].str.contains("images")]
    counts = pd.to_numeric(pairs["count"], errors="coerce")  # "unknown (no patient ids)" where a set has none
    if counts.isna().all():
        return "This dataset has no patient ids, so leakage between its splits cannot be measured."
    shared = pairs[counts > 0]
    if shared.empty:
        return "No patient has images in two splits: the split is leak-free."
    return "Patients shared between splits: " + ", ".join(f"{r.pair} {int(r.count)}" for r in shared.itertuples()) \
        + " - test images of these patients make the test easier than on new patients."


def describe_main(t: pd.DataFrame) -> str:
    rows = t.set_index("checkpoint") if "checkpoint" in t.columns else t
    best = rows.loc["best"] if "best" in rows.index else rows.iloc[0]
    text = f"The best-validation checkpoint reaches a test mean AUC of {_pct(best['mAUC'])} and mAP {_pct(best['mAP'])}"
    if "last" in rows.index:
        text += f"; the last epoch gives {_pct(rows.loc['last', 'mAUC'])}"
    n = int(best.get("n_runs", 1))
    text += f" ({n} seed{'s' if n != 1 else ''}" + (f", sd {best['mAUC_sd']:.2f})." if n > 1 else ").")
    return text


def describe_runs(t: pd.DataFrame) -> str:
    best = t[t["checkpoint"] == "best"] if "checkpoint" in t.columns else t
    ci = _ci_cols(best, "mAUC")
    r = best.iloc[0]
    text = f"Seed {int(r['seed'])}: test mean AUC {_pct(r['mAUC'])} at epoch {int(r['epoch'])}"
    if ci:
        text += f", bootstrap 95% CI [{r[ci[0]]:.2f}, {r[ci[1]]:.2f}] over test images"
    return text + "."


def describe_curves(t: pd.DataFrame) -> str:
    parts = []
    for seed, g in t.groupby("seed", sort=False):
        epoch = dict(zip(g["checkpoint"], g["epoch"]))
        parts.append(f"seed {int(seed)}: epoch {int(epoch['best'])} of {int(epoch.get('last', epoch['best']))}")
    return ("Highest validation mean AUC at " + "; ".join(parts) + ". A best epoch well before the last suggests "
            "overfitting or a noisy validation set; a best epoch at the end, that training had not converged.")


def describe_per_class(t: pd.DataFrame) -> str:
    d = t.dropna(subset=["AUC"]).sort_values("AUC", ascending=False)
    missing = t.loc[t["AUC"].isna(), "class"].tolist()
    text = (f"Per class, {d.iloc[0]['class']} is detected best (AUC {_pct(d.iloc[0]['AUC'])}) and "
            f"{d.iloc[-1]['class']} worst ({_pct(d.iloc[-1]['AUC'])}).") if len(d) else "No class could be scored."
    if missing:
        text += f" Not scorable on this test set (one label value only): {', '.join(missing)}."
    return text


def describe_split_effect(t: pd.DataFrame) -> str:
    col = "mAUC minus patient-level"
    leaky = t[t[col] != 0] if col in t.columns else t.iloc[:1]
    if leaky.empty:
        return "Both splits give the same mean AUC."
    r = leaky.iloc[0]
    text = (f"Under the leaky split ({r['split']}), {r['test images of train patients (%)']:.0f}% of test images "
            f"belong to patients seen in training, and the mean AUC reads {r[col]:+.2f} points against the "
            "leak-free patient-level split.")
    paired = _paired_cols(t, "mAUC")
    if paired is not None:
        text += f" The {resolved(r[paired[1]], r[paired[2]])}."
    else:
        text += " The two splits have different test sets, so part of the gap is test-set sampling, not leakage."
    return text


def describe_ablation(t: pd.DataFrame) -> str:
    full = t.iloc[0]
    paired = _paired_cols(t, "mAUC")
    parts = [f"{r['variant']} {r['mAUC'] - full['mAUC']:+.2f}"
             + (f" (95% CI [{r[paired[1]]:+.2f}, {r[paired[2]]:+.2f}])" if paired else "")
             for _, r in t.iloc[1:].iterrows()]
    worst = t.iloc[1:].sort_values("mAUC").iloc[0] if len(t) > 1 else None
    text = f"The full model reaches {_pct(full['mAUC'])} test mean AUC; against it: {', '.join(parts)} points."
    if worst is not None:
        text += (f" Removing {worst['variant'].replace('w/o ', '')} costs the most." if worst["mAUC"] < full["mAUC"]
                 else " No variant is below the full model: on this budget the modules do not help.")
    d = t.dropna(subset=["mAUC"]).sort_values("mAUC", ascending=False).reset_index(drop=True)
    return text + (" " + _resolution(d, "mAUC", "variant", d["mAUC"].iloc[0] - d["mAUC"].iloc[1]) if len(d) > 1 else "")


def describe_models(t: pd.DataFrame) -> str:
    text = ranking(t)
    ours = t[t["model"].str.startswith("ctranscnn")]
    if len(ours):
        rank = int((t["mAUC"] > ours.iloc[0]["mAUC"]).sum()) + 1
        text += f" CTransCNN ranks {rank} of {len(t)}."
    return text


def describe_radar(t: pd.DataFrame) -> str:
    """Per-class AUC of every model (rows = models): who leads on how many classes, and which cannot be scored."""
    auc = t.set_index("model")
    scorable = auc.columns[auc.notna().all()]
    if scorable.empty:
        return "No class could be scored on this test set."
    wins = auc[scorable].idxmax().value_counts()
    spread = (auc[scorable].max() - auc[scorable].min())
    text = (f"{wins.index[0]} has the highest AUC on {wins.iloc[0]} of {len(scorable)} scorable classes; the models "
            f"differ most on {spread.idxmax()} ({spread.max():.1f} points between best and worst) and least on "
            f"{spread.idxmin()} ({spread.min():.1f}).")
    missing = [c for c in auc.columns if c not in scorable]
    if missing:
        text += f" Not scorable on this test set (marked on the chart): {', '.join(missing)}."
    return text


def describe_samples(t: pd.DataFrame) -> str:
    """The sample grid shows one training image per class with training positives (from the prevalence table)."""
    shown = t.loc[t["train"] > 0, "class"].tolist()
    absent = t.loc[t["train"] == 0, "class"].tolist()
    text = (f"One training image for each of the {len(shown)} classes with training positives, titled with the "
            "class it stands for and all its labels; red boxes are the image's annotated findings.")
    return text + (f" No training image has {', '.join(absent)}." if absent else "")


def describe_comparison(t: pd.DataFrame) -> str:
    d = t.dropna(subset=["paper_mAUC", "ours_mAUC"])
    if d.empty:
        return "No method has both a published and a measured mean AUC."
    diff = d["ours_mAUC"] - d["paper_mAUC"]
    paper_top, ours_top = d.loc[d["paper_mAUC"].idxmax()], d.loc[d["ours_mAUC"].idxmax()]
    rho = d["paper_mAUC"].rank().corr(d["ours_mAUC"].rank())
    return (f"The paper's best method is {paper_top['method']} ({paper_top['paper_mAUC']:.2f}%); here it is "
            f"{ours_top['method']} ({ours_top['ours_mAUC']:.2f}%). Our numbers differ from the published ones by "
            f"{diff.abs().mean():.2f} points on average (Spearman rank correlation of the two orders "
            f"{rho:.2f}); the columns come from different data, so only the order is comparable, and only loosely.")


def describe_complexity(t: pd.DataFrame) -> str:
    big, fast = t.loc[t["params_M"].idxmax()], t.loc[t["train_images_per_s"].idxmax()]
    return (f"{big['model']} is the largest ({big['params_M']:.2f} M parameters, {big['GFLOPs']:.3f} GFLOPs at "
            f"{int(big['image_size'])} px); {fast['model']} trains fastest ({fast['train_images_per_s']:.0f} "
            "images/s on this machine). Throughput depends on the machine and what else ran on it.")


def describe_localisation(t: pd.DataFrame) -> str:
    overall = t[t["label"] == "overall"] if "label" in t.columns else t
    if overall.empty or "pointing" not in overall.columns:
        return ""
    best = overall.loc[overall["pointing"].idxmax()]
    return (f"{best['model']} points inside the box most often (pointing-game accuracy {best['pointing']:.2f}, "
            f"mIoU {best['miou']:.3f}, over {int(best['n'])} held-out boxes). Grad-CAM at a coarse feature map "
            "localises only roughly at this image size.")


# key of a section's output -> (table it reads, describer)
DESCRIBERS: dict[str, tuple[str, Callable[[pd.DataFrame], str]]] = {
    "summary": ("summary", describe_summary), "prevalence": ("prevalence", describe_prevalence),
    "fig_prevalence": ("prevalence", describe_prevalence_by_split),
    "cardinality": ("cardinality", describe_cardinality),
    "leakage": ("leakage", describe_leakage), "main": ("main_results", describe_main),
    "runs": ("runs", describe_runs), "fig_curves": ("runs", describe_curves),
    "per_class": ("per_class_auc", describe_per_class), "fig_roc": ("per_class_auc", describe_per_class),
    "split_effect": ("split_effect", describe_split_effect), "ablation": ("ablation", describe_ablation),
    "fig_ablation": ("ablation", describe_ablation), "models": ("models", describe_models),
    "fig_radar": ("per_class_auc", describe_radar), "fig_samples": ("prevalence", describe_samples), "fig_roc_models": ("models", describe_models),
    "comparison": ("comparison", describe_comparison), "complexity": ("complexity", describe_complexity),
    "localisation": ("localisation", describe_localisation),
}


def describe(key: str, table: pd.DataFrame | None) -> str:
    """The sentences for section output `key` from its numeric table ('' when there is no describer or table)."""
    if key not in DESCRIBERS or table is None or table.empty:
        return ""
    return DESCRIBERS[key][1](table)


# ---------------------------------------------------------------- caveats of this data and profile


def caveats(phantom: bool, profile: str, image_size: int, epochs: int, limit_train: int, model: str,
            seeds: Sequence[int], patch_size: int = 16, dry_run: bool = False, trained: bool = True) -> list[str]:
    """What limits the numbers of a notebook: synthetic data, and where models are trained, a short budget, a
    small token grid, one seed."""
    from ctranscnn.models.ctranscnn import token_grid

    out = []
    if dry_run:
        out.append("Dry run: a handful of optimizer steps with the paper's plan; none of these numbers is a result.")
    if phantom:
        out.append("Synthetic (phantom) data: these numbers check that the pipeline works end to end; they are not a "
                   "reproduction of the paper's results on the real datasets.")
    if not trained:
        return out
    if profile != "paper":
        out.append(f"Profile {profile}: {model} at {image_size} px for {epochs} epochs on at most "
                   f"{limit_train or 'all'} training images (paper: {PAPER_RECIPE}); a budget run, so absolute "
                   "numbers sit below the paper's and small differences between models may not survive the full "
                   "recipe.")
    grid = token_grid(image_size, image_size, patch_size)
    if grid != PAPER_GRID:
        out.append(f"At {image_size} px CTransCNN's transformer branch sees a {grid[0]} x {grid[1]} token grid "
                   f"(224 px: {PAPER_GRID[0]} x {PAPER_GRID[1]}), so its global attention has little to work with.")
    if len(seeds) == 1:
        out.append("One seed: the CIs cover test-image sampling only, not training randomness (no sd over seeds).")
    return out

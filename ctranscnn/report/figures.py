"""Figures for the notebooks: plot functions; each figure is saved as PNG (for Markdown/HTML) and PDF (for LaTeX)
by `ctranscnn.io.save_figure`.

Plot functions take plain arrays/DataFrames (read from the run folders by the caller) and return a
matplotlib Figure, so they are testable without a trained model.
"""
from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator
from PIL import Image
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

FPR_GRID = np.linspace(0.0, 1.0, 201)
RECALL_GRID = np.linspace(0.0, 1.0, 201)


# Paper column widths (inches) of a two-column layout; figures are drawn at print size with 6-7 pt text.
COLUMN, DOUBLE = 3.5, 7.16
PRINT_RC = {"font.size": 7, "axes.titlesize": 7, "axes.labelsize": 7, "legend.fontsize": 6, "xtick.labelsize": 6,
            "ytick.labelsize": 6, "figure.titlesize": 8, "lines.markersize": 3.5}
print_size = plt.rc_context(PRINT_RC)  # decorator: text sizes are fixed when the artists are created

# One colour and marker per registered model family, the same in every figure (ROC/PR, radar, curves, bars):
# CTransCNN red, then tab20's dark shades and one light one; other names (seeds, ablation variants) take Dark2's
# eight dark colours first (readable lines), then tab20's remaining light shades.
FAMILIES = ("ctranscnn", "conformer", "resnet34", "resnet50", "resnext50", "seresnet50", "vit", "deit", "swin",
            "convnext", "repvgg")
_TAB20 = plt.get_cmap("tab20").colors
COLOURS = (tuple(_TAB20[i] for i in (6, 0, 2, 4, 8, 10, 12, 16, 18, 14, 1)) + plt.get_cmap("Dark2").colors
           + tuple(_TAB20[i] for i in (3, 5, 7, 9, 11, 13, 15, 17, 19)))
MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*", "<", ">", "h", "p", "d", "H", "8", "1", "2", "3", "4", "+")
SIZE_SUFFIX = re.compile(r"_(tiny|mini|micro)$")
UNSCORABLE = "not scorable"  # a class with only one label value on the test set has no AUC


def model_family(name: str) -> str | None:
    """The registered family of a model name (`resnet50_mini` -> resnet50) or of a display label that starts with
    one (`CTransCNN (full)` -> ctranscnn); None for anything else (seeds, ablation variants)."""
    key = SIZE_SUFFIX.sub("", str(name).lower())
    key = key if key in FAMILIES else re.split(r"[\s(]", key)[0]
    return key if key in FAMILIES else None


def palette(names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """`{name: {'color', 'marker'}}`, colours distinct within `names` up to 28 names (markers follow the slot and
    repeat after 20): a family keeps its own slot in every figure; other names take the slots no family owns
    first, then the unused family slots, in order."""
    slots: dict[str, int] = {}
    for name in names:
        family = model_family(name)
        if family is not None and FAMILIES.index(family) not in slots.values():
            slots[name] = FAMILIES.index(family)
    free = [i for i in range(len(FAMILIES), len(COLOURS))] + [i for i in range(len(FAMILIES))]
    free = iter([i for i in free if i not in slots.values()])
    for name in names:
        if name not in slots:
            slots[name] = next(free, len(slots) % len(COLOURS))  # beyond 28 names colours repeat
    return {name: {"color": COLOURS[slots[name]], "marker": MARKERS[slots[name] % len(MARKERS)]} for name in names}


COLUMN_LABELS = {"train_loss": "training loss (per image)", "val_loss": "validation loss (per image)",
                 "val_mAUC": "validation mean AUC (%)", "val_mAP": "validation mAP (%)", "lr": "learning rate"}


@print_size
def plot_training_curves(
    histories: Mapping[str, pd.DataFrame], columns: Sequence[str], x: str = "epoch", title: str = "",
) -> Figure:
    """One panel per metric column (e.g. train loss, val mAUC), one line per run; columns no run has are left out."""
    columns = [c for c in columns if any(c in h.columns for h in histories.values())]
    width = COLUMN if len(columns) == 1 else DOUBLE
    fig, axes = plt.subplots(1, len(columns), figsize=(width, 2.3), squeeze=False, layout="constrained")
    styles = palette(list(histories))
    for ax, col in zip(axes[0], columns):
        for name, hist in histories.items():
            if col in hist.columns:
                ax.plot(hist[x], hist[col], lw=1.1, label=name, **styles[name])
        ax.set(xlabel=x, ylabel=COLUMN_LABELS.get(col, col))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        if col == "lr":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
        ax.grid(alpha=0.3)
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside right upper")
    if title:
        fig.suptitle(title)
    return fig


def _scoreable(y_true: np.ndarray) -> np.ndarray:
    """Classes whose column has both positives and negatives (AUC is undefined otherwise)."""
    pos = y_true.sum(axis=0)
    return np.flatnonzero((pos > 0) & (pos < len(y_true)))


def macro_roc(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Macro-average ROC over scoreable classes: (FPR grid, mean TPR, mean per-class AUC in %)."""
    y_true, y_score = np.asarray(y_true), np.asarray(y_score)
    classes = _scoreable(y_true)
    if classes.size == 0:
        raise ValueError("macro_roc: no class has both positive and negative examples")
    tprs = []
    for c in classes:
        fpr, tpr, _ = roc_curve(y_true[:, c], y_score[:, c])
        tprs.append(np.interp(FPR_GRID, fpr, tpr))
    auc = roc_auc_score(y_true[:, classes], y_score[:, classes], average="macro")
    return FPR_GRID, np.mean(tprs, axis=0), 100.0 * auc


def macro_pr(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Macro-average precision-recall curve over scoreable classes: (recall grid, mean interpolated precision
    (the best precision at recall >= r, as in PASCAL VOC), mean AP in %)."""
    y_true, y_score = np.asarray(y_true), np.asarray(y_score)
    classes = _scoreable(y_true)
    if classes.size == 0:
        raise ValueError("macro_pr: no class has both positive and negative examples")
    precisions = []
    for c in classes:
        precision, recall, _ = precision_recall_curve(y_true[:, c], y_score[:, c])
        recall, precision = recall[::-1], precision[::-1]  # sklearn lists recall decreasing
        envelope = np.maximum.accumulate(precision[::-1])[::-1]  # best precision at recall >= r
        precisions.append(envelope[np.searchsorted(recall, RECALL_GRID, side="left")])
    ap = average_precision_score(y_true[:, classes], y_score[:, classes], average="macro")
    return RECALL_GRID, np.mean(precisions, axis=0), 100.0 * ap


def _roc_axes(ax) -> None:
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8)
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate (1 - specificity)",
           ylabel="true positive rate (sensitivity)")
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)


@print_size
def plot_roc_by_model(predictions: Mapping[str, tuple[np.ndarray, np.ndarray]], title: str = "") -> Figure:
    """Like the paper's project figures: macro-average ROC and precision-recall curves, one per model, with the
    mean AUC and mean AP in the legend (outside the data, at the right)."""
    fig, (roc_ax, pr_ax) = plt.subplots(1, 2, figsize=(DOUBLE, 3.0), layout="constrained")
    styles = palette(list(predictions))
    for name, (y_true, y_score) in predictions.items():
        fpr, tpr, auc = macro_roc(y_true, y_score)
        recall, precision, ap = macro_pr(y_true, y_score)
        kw = dict(lw=1.1, markevery=25, **styles[name])
        roc_ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.2f}, AP {ap:.2f})", **kw)
        pr_ax.plot(recall, precision, label=name, **kw)
    _roc_axes(roc_ax)
    pr_ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="recall (sensitivity)", ylabel="precision (PPV)")
    pr_ax.set_aspect("equal")
    pr_ax.grid(alpha=0.3)
    roc_ax.set_title("macro-average ROC")
    pr_ax.set_title("macro-average precision-recall")
    fig.legend(*roc_ax.get_legend_handles_labels(), loc="outside right upper", title="mean over classes (%)")
    if title:
        fig.suptitle(title)
    return fig


@print_size
def plot_roc_by_class(y_true: np.ndarray, y_score: np.ndarray, classes: Sequence[str], title: str = "") -> Figure:
    """One model: a ROC curve per class (AUC in the legend, below the axes); classes without both labels on this
    test set have no curve and are named as not scorable."""
    y_true, y_score = np.asarray(y_true), np.asarray(y_score)
    fig, ax = plt.subplots(figsize=(COLUMN, 5.0), layout="constrained")
    colors = sns.color_palette("husl", len(classes))
    scoreable = _scoreable(y_true)
    for c in scoreable:
        fpr, tpr, _ = roc_curve(y_true[:, c], y_score[:, c])
        auc = 100.0 * roc_auc_score(y_true[:, c], y_score[:, c])
        ax.plot(fpr, tpr, lw=1.0, color=colors[c], label=f"{classes[c]} ({auc:.1f})")
    missing = [classes[c] for c in range(len(classes)) if c not in set(scoreable)]
    ax.set_title(title)
    _roc_axes(ax)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=2, title="class (test AUC %)")
    if missing:
        fig.text(0.5, 0.0, f"{UNSCORABLE} on this test set (one label value only): {', '.join(missing)}",
                 ha="center", va="bottom", fontsize=6, wrap=True)
    return fig


@print_size
def plot_radar(per_class_auc: pd.DataFrame, title: str = "", vmin: float | None = None) -> Figure:
    """Radar chart of per-class AUC (%): rows = models, columns = classes. A class with no AUC (NaN: not scorable
    on this test set) leaves a gap in every line and its spoke is labelled as not scorable."""
    classes = list(per_class_auc.columns)
    values = per_class_auc.to_numpy(dtype=float)
    unscorable = np.isnan(values).any(axis=0)
    angles = np.linspace(0, 2 * np.pi, len(classes), endpoint=False)
    closed = np.append(angles, angles[0])
    finite = values[np.isfinite(values)]
    lo = vmin if vmin is not None else (max(0.0, np.floor(finite.min() / 10) * 10) if finite.size else 0.0)
    fig, ax = plt.subplots(figsize=(DOUBLE, 4.2), subplot_kw={"projection": "polar"}, layout="constrained")
    styles = palette([str(n) for n in per_class_auc.index])
    for name, row in zip(per_class_auc.index, values):
        ax.plot(closed, np.append(row, row[0]), lw=1.0, label=str(name), **styles[str(name)])
    labels = [f"{c}\n({UNSCORABLE})" if bad else c for c, bad in zip(classes, unscorable)]
    ax.set_xticks(angles, labels)
    for tick, bad in zip(ax.get_xticklabels(), unscorable):
        if bad:
            tick.set_color("grey")
    ax.plot(angles[unscorable], np.full(unscorable.sum(), 100.0), ls="none", marker="x", color="grey")
    ax.set_ylim(lo, 100)
    ax.set_rlabel_position(180 / len(classes))  # between the first two spokes, clear of the lines
    ax.set_ylabel("test AUC (%) (radial axis)", labelpad=42)  # clear of the class names on the left
    ax.set_title(title)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper")
    return fig


@print_size
def plot_bars(
    df: pd.DataFrame, x: str, y: str, yerr: str | None = None, ylabel: str = "", title: str = "",
    reference: float | None = None, reference_label: str = "", xlabel: str = "",
) -> Figure:
    """Bar chart with optional error bars (e.g. the ablation: variant vs mean AUC ± sd) and an optional reference line."""
    names = df[x].astype(str).tolist()
    fig, ax = plt.subplots(figsize=(COLUMN, 2.8), layout="constrained")
    err = df[yerr].fillna(0.0) if yerr else None
    styles = palette(names)
    ax.bar(names, df[y], yerr=err, capsize=3, color=[styles[n]["color"] for n in names])
    tops = df[y] + (err if err is not None else 0.0)  # value labels sit above the error bars
    for i, (v, top) in enumerate(zip(df[y], tops)):
        ax.annotate(f"{v:.2f}", (i, top), ha="center", va="bottom", fontsize=6, xytext=(0, 2), textcoords="offset points")
    if reference is not None:
        ax.axhline(reference, ls="--", c="grey", lw=0.8)
        if reference_label:
            ax.annotate(reference_label, (1.0, reference), xycoords=("axes fraction", "data"), ha="right",
                        va="top", fontsize=6, color="grey", xytext=(0, -2), textcoords="offset points")
    values = df[y].to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    if values.size and 0 <= values.min() and values.max() <= 100:  # percentages: zoom in on the differences
        ax.set_ylim(max(0.0, values.min() - 10), min(100.0, values.max() + 5))
    ax.set(xlabel=xlabel or x, ylabel=ylabel or y, title=title)
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right", rotation_mode="anchor")
    return fig


@print_size
def plot_differences(df: pd.DataFrame, label: str, name: str, metrics: Sequence[str] = ("mAUC", "mAP"),
                     title: str = "") -> Figure:
    """Forest plot of paired differences: per row of `df` (named by column `label`) the difference '<m> <name>'
    with its 95% CI ('<m> <name> lo' / 'hi'; the title should say so), one panel per metric, a dashed line at 0;
    rows without a difference (the reference) are left out."""
    rows = df[np.isfinite(df[f"{metrics[0]} {name}"].to_numpy(dtype=float))]
    names = rows[label].astype(str).tolist()
    fig, axes = plt.subplots(1, len(metrics), figsize=(COLUMN, 0.8 + 0.3 * len(names)), sharey=True,
                             layout="constrained", squeeze=False)
    styles, y = palette(names), np.arange(len(names))[::-1]  # first row on top
    for ax, m in zip(axes[0], metrics):
        d, lo, hi = (rows[f"{m} {name}{s}"].to_numpy(dtype=float) for s in ("", " lo", " hi"))
        for yi, n, di, l, h in zip(y, names, d, lo, hi):
            ax.errorbar(di, yi, xerr=[[di - l], [h - di]], fmt=styles[n]["marker"], color=styles[n]["color"],
                        capsize=2, lw=1)
        ax.axvline(0.0, ls="--", c="grey", lw=0.8)
        ax.set(xlabel=f"{m} (points)")
    axes[0][0].set_yticks(y, names)
    fig.suptitle(title)
    return fig


def cooccurrence(labels: np.ndarray) -> np.ndarray:
    """C x C counts of images carrying both labels (diagonal = images with the label)."""
    y = np.asarray(labels, dtype=np.int64)
    return y.T @ y


@print_size
def plot_cooccurrence(labels: np.ndarray, classes: Sequence[str], title: str = "", conditional: bool = False) -> Figure:
    """Heat map of label co-occurrence counts, or with `conditional` P(column label | row label)."""
    counts = cooccurrence(labels)
    data = counts / np.maximum(np.diag(counts)[:, None], 1) if conditional else counts
    n = len(classes)
    width = COLUMN if n <= 6 else DOUBLE
    fig, ax = plt.subplots(figsize=(width, 0.8 * width), layout="constrained")
    sns.heatmap(pd.DataFrame(data, index=classes, columns=classes), ax=ax, cmap="viridis", square=True,
                annot=n <= 16, fmt=".2f" if conditional else "d", annot_kws={"fontsize": 5},
                cbar_kws={"label": "P(column label | row label)" if conditional else "images with both labels"})
    ax.set(title=title, xlabel="column label", ylabel="row label")
    return fig


@print_size
def plot_prevalence(prevalence: pd.DataFrame, title: str = "", ylabel: str = "% of images") -> Figure:
    """Grouped bars of per-class prevalence: rows = classes, columns = splits (or datasets)."""
    fig, ax = plt.subplots(figsize=(COLUMN if len(prevalence) <= 6 else DOUBLE, 2.6), layout="constrained")
    prevalence.plot.bar(ax=ax, width=0.8, legend=False)
    ax.set(ylabel=ylabel, xlabel="class", title=title)
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right", rotation_mode="anchor")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper", title="split")
    return fig


@print_size
def plot_sample_grid(
    paths: Sequence[str | Path | np.ndarray], titles: Sequence[str], boxes: Sequence[Sequence[tuple]] | None = None,
    ncols: int = 4,
) -> Figure:
    """Images (files, or uint8 arrays) with their labels as titles; `boxes[i]` lists (x, y, w, h, label) in original
    pixel coordinates."""
    n = len(paths)
    nrows = max(1, int(np.ceil(n / ncols)))
    side = DOUBLE / ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(DOUBLE, (side + 0.3) * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        if isinstance(paths[i], np.ndarray):  # sources that ship arrays (ChestMNIST)
            ax.imshow(paths[i], cmap="gray")
        else:
            with Image.open(paths[i]) as im:
                ax.imshow(np.asarray(im.convert("L")), cmap="gray")
        ax.set_title("\n".join(textwrap.fill(line, 34) for line in titles[i].split("\n")), fontsize=6)
        for x, y, w, h, label in (boxes[i] if boxes else ()):
            ax.add_patch(Rectangle((x, y), w, h, fill=False, ec="red", lw=1.2))
            ax.text(x, y, label, color="red", fontsize=6, va="bottom")
    fig.tight_layout()
    return fig

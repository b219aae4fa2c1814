"""Figures for the notebooks: plot functions; each figure is saved as PNG (for Markdown/HTML) and PDF (for LaTeX)
by `ctranscnn.io.save_figure`.

Plot functions take plain arrays/DataFrames (read from the run folders by the caller) and return a
matplotlib Figure, so they are testable without a trained model.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image
from sklearn.metrics import roc_auc_score, roc_curve

# re-exported until report/context.py imports it from ctranscnn.io (the one save_figure)
from ctranscnn.io import save_figure  # noqa: F401

FPR_GRID = np.linspace(0.0, 1.0, 201)


def plot_training_curves(
    histories: Mapping[str, pd.DataFrame], columns: Sequence[str], x: str = "epoch"
) -> Figure:
    """One panel per metric column (e.g. train loss, val mAUC), one line per run; columns a run lacks are skipped."""
    fig, axes = plt.subplots(1, len(columns), figsize=(4.2 * len(columns), 3.4), squeeze=False)
    for ax, col in zip(axes[0], columns):
        for name, hist in histories.items():
            if col in hist.columns:
                ax.plot(hist[x], hist[col], marker="o", ms=3, label=name)
        ax.set_xlabel(x)
        ax.set_title(col)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
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


def _roc_axes(ax) -> None:
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8)
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate", ylabel="true positive rate")
    ax.set_aspect("equal")
    ax.legend(fontsize=7, loc="lower right")


def plot_roc_by_model(predictions: Mapping[str, tuple[np.ndarray, np.ndarray]], title: str = "") -> Figure:
    """Like the paper's project figures: one macro-average ROC curve per model, mean AUC in the legend."""
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, (y_true, y_score) in predictions.items():
        fpr, tpr, auc = macro_roc(y_true, y_score)
        ax.plot(fpr, tpr, lw=1.4, label=f"{name} (mean AUC {auc:.2f})")
    ax.set_title(title)
    _roc_axes(ax)
    return fig


def plot_roc_by_class(y_true: np.ndarray, y_score: np.ndarray, classes: Sequence[str], title: str = "") -> Figure:
    """One model: a ROC curve per class (AUC in the legend); classes without both labels are left out."""
    y_true, y_score = np.asarray(y_true), np.asarray(y_score)
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    colors = sns.color_palette("husl", len(classes))
    for c in _scoreable(y_true):
        fpr, tpr, _ = roc_curve(y_true[:, c], y_score[:, c])
        auc = 100.0 * roc_auc_score(y_true[:, c], y_score[:, c])
        ax.plot(fpr, tpr, lw=1.1, color=colors[c], label=f"{classes[c]} ({auc:.1f})")
    ax.set_title(title)
    _roc_axes(ax)
    return fig


def plot_radar(per_class_auc: pd.DataFrame, title: str = "", vmin: float | None = None) -> Figure:
    """Radar chart of per-class AUC (%): rows = models, columns = classes; NaN (unscoreable) drawn at the centre."""
    classes = list(per_class_auc.columns)
    angles = np.linspace(0, 2 * np.pi, len(classes), endpoint=False)
    closed = np.append(angles, angles[0])
    lo = vmin if vmin is not None else max(0.0, np.floor(np.nanmin(per_class_auc.to_numpy()) / 10) * 10)
    fig, ax = plt.subplots(figsize=(6, 6), subplot_kw={"projection": "polar"})
    for name, row in per_class_auc.iterrows():
        values = np.nan_to_num(row.to_numpy(dtype=float), nan=lo)
        ax.plot(closed, np.append(values, values[0]), lw=1.2, label=str(name))
    ax.set_xticks(angles, classes, fontsize=7)
    ax.set_ylim(lo, 100)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper right", bbox_to_anchor=(1.35, 1.1))
    return fig


def plot_bars(
    df: pd.DataFrame, x: str, y: str, yerr: str | None = None, ylabel: str = "", title: str = "",
    reference: float | None = None,
) -> Figure:
    """Bar chart with optional error bars (e.g. the ablation: variant vs mean AUC ± sd) and an optional reference line."""
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(df)), 3.6))
    err = df[yerr].fillna(0.0) if yerr else None
    ax.bar(df[x].astype(str), df[y], yerr=err, capsize=3, color=sns.color_palette("deep", len(df)))
    tops = df[y] + (err if err is not None else 0.0)  # value labels sit above the error bars
    for i, (v, top) in enumerate(zip(df[y], tops)):
        ax.annotate(f"{v:.2f}", (i, top), ha="center", va="bottom", fontsize=7, xytext=(0, 2), textcoords="offset points")
    if reference is not None:
        ax.axhline(reference, ls="--", c="grey", lw=0.8)
    values = df[y].to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    if values.size and 0 <= values.min() and values.max() <= 100:  # percentages: zoom in on the differences
        ax.set_ylim(max(0.0, values.min() - 10), min(100.0, values.max() + 5))
    ax.set(ylabel=ylabel or y, title=title)
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    return fig


def cooccurrence(labels: np.ndarray) -> np.ndarray:
    """C x C counts of images carrying both labels (diagonal = images with the label)."""
    y = np.asarray(labels, dtype=np.int64)
    return y.T @ y


def plot_cooccurrence(labels: np.ndarray, classes: Sequence[str], title: str = "", conditional: bool = False) -> Figure:
    """Heat map of label co-occurrence counts, or with `conditional` P(column label | row label)."""
    counts = cooccurrence(labels)
    data = counts / np.maximum(np.diag(counts)[:, None], 1) if conditional else counts
    n = len(classes)
    fig, ax = plt.subplots(figsize=(0.55 * n + 2.5, 0.5 * n + 1.5))
    sns.heatmap(pd.DataFrame(data, index=classes, columns=classes), ax=ax, cmap="viridis", square=True,
                annot=n <= 16, fmt=".2f" if conditional else "d", annot_kws={"fontsize": 6},
                cbar_kws={"label": "P(col | row)" if conditional else "images"})
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_prevalence(prevalence: pd.DataFrame, title: str = "", ylabel: str = "% of images") -> Figure:
    """Grouped bars of per-class prevalence: rows = classes, columns = splits (or datasets)."""
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(prevalence)), 3.6))
    prevalence.plot.bar(ax=ax, width=0.8)
    ax.set(ylabel=ylabel, title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_sample_grid(
    paths: Sequence[str | Path], titles: Sequence[str], boxes: Sequence[Sequence[tuple]] | None = None, ncols: int = 4,
) -> Figure:
    """Images with their labels as titles; `boxes[i]` lists (x, y, w, h, label) in original pixel coordinates."""
    n = len(paths)
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3 * ncols, 3.2 * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        with Image.open(paths[i]) as im:
            ax.imshow(np.asarray(im.convert("L")), cmap="gray")
        ax.set_title(titles[i], fontsize=7)
        for x, y, w, h, label in (boxes[i] if boxes else ()):
            ax.add_patch(Rectangle((x, y), w, h, fill=False, ec="red", lw=1.2))
            ax.text(x, y, label, color="red", fontsize=6, va="bottom")
    fig.tight_layout()
    return fig

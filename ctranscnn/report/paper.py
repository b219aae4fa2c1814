"""The paper's published mean AUCs (reference spec §6.1) and the table that puts ours beside them.

The published numbers come from the authors' project page figures (ROC legends), on the real datasets.
Our numbers may come from phantom data; the table labels each column with the data it came from and
never presents phantom numbers as a reproduction.
"""
from __future__ import annotations

import re
from importlib import resources
from typing import Mapping

import numpy as np
import pandas as pd

SOURCE = "Wu et al. 2023, project page wuliwuxin.github.io/CTransCNNProject (ROC legends of CXR11.png, CXR14.png)"
# Column of paper_mean_auc.csv -> what the paper evaluated on.
PAPER_DATA = {
    "chestxray11": "real ChestX-ray11 = RANZCR CLiP, 30,083 images",
    "nih14_subset": "real NIH ChestX-ray14 subset, 51,759 images",
}
# Published end-to-end ChestMNIST results of MedMNIST+ (Doerrich et al. 2024, "Rethinking model prototyping
# through the MedMNIST+ dataset collection", Sci. Rep.): test mean AUC (%), mean of 3 seeds, by image size.
# Checked against the END-TO-END rows of the authors' ChestMNIST table (BENCHMARK.md of
# sdoerrich97/rethinking-model-prototyping-MedMNISTPlus, assets/benchmark_results_chestmnist.png).
MEDMNIST_PLUS_SOURCE = "Doerrich et al. 2024 (MedMNIST+), end-to-end training, mean of 3 seeds"
# How those numbers were made, unlike our runs (random init, trained at the file's size, the authors' flip).
MEDMNIST_PLUS_PROTOCOL = ("their models start from ImageNet weights (ours from random init), see each image "
                          "zero-padded to 224 px (ours at the file's size), train without augmentation and are "
                          "tested at the lowest validation loss: a reference point, not a like-for-like comparison")
MEDMNIST_PLUS = {
    64: {"DenseNet-121": 78.70, "ResNet-18": 75.59, "ViT-B/16": 76.21},
    224: {"DenseNet-121": 82.22, "ResNet-18": 78.96, "ViT-B/16": 80.08},
}
# Their models as rows of the comparison: ViT-B/16 is the paper's (and our paper-size) ViT; the others are new rows.
MEDMNIST_PLUS_ROWS = {"ViT-B/16": "ViT", "DenseNet-121": "DenseNet-121", "ResNet-18": "ResNet-18"}
PHANTOM_NOTE = ("'this run' numbers come from synthetic phantom data: they test the pipeline and are not "
                "a reproduction of the paper's results")


def paper_mean_auc() -> pd.DataFrame:
    """One row per compared method: method (paper name), model (our model family), chestxray11, nih14_subset (%)."""
    with resources.files("ctranscnn.report").joinpath("paper_mean_auc.csv").open() as f:
        return pd.read_csv(f)


def model_family(name: str) -> str:
    """Registry name without its size: 'resnet50_mini' -> 'resnet50', 'ctranscnn_tiny' -> 'ctranscnn'."""
    return re.sub(r"_(micro|mini|tiny)$", "", name)


def is_phantom(data_label: str) -> bool:
    return "phantom" in data_label.lower()


def comparison_notes(our_data: str) -> list[str]:
    """Provenance notes for a comparison table: where the paper's numbers come from, and the phantom caveat."""
    return [f"paper numbers: {SOURCE}"] + ([PHANTOM_NOTE] if is_phantom(our_data) else [])


def comparison_table(
    ours: pd.DataFrame,
    paper_dataset: str,
    our_data: str,
    missing: str | Mapping[str, str] = "not run in this profile",
    digits: int = 2,
    medmnist_size: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Paper's mean AUC beside ours, one row per method.

    `ours` has one row per model with columns `model` (our registry name), `mAUC` (%) and optionally
    `method` (the paper's method it stands for; default: the method of the model's family in
    paper_mean_auc.csv, any size), `mAUC_sd` and `n_runs` (as produced by
    `summarise_seeds`). `paper_dataset` is a key of PAPER_DATA; `our_data` names the data our runs used
    (e.g. 'nih14-phantom'). Cells without a number say why: `missing` is one reason for all methods or
    a reason per paper method. Our models that stand for no paper method are appended.
    `medmnist_size` (ChestMNIST runs): add a column with MedMNIST+'s published results at that image size
    (rows for their DenseNet-121 and ResNet-18; their ViT-B/16 on the ViT row).
    Returns (numeric, display) for `write_table`.
    """
    if paper_dataset not in PAPER_DATA:
        raise KeyError(f"paper_dataset {paper_dataset!r}; known: {', '.join(PAPER_DATA)}")
    if "model" not in ours.columns or "mAUC" not in ours.columns:
        raise KeyError(f"comparison_table: `ours` needs columns 'model' and 'mAUC' (has {list(ours.columns)})")
    paper = paper_mean_auc()
    ours = ours.copy()
    if "method" not in ours.columns:
        family = ours["model"].map(model_family)
        ours["method"] = family.map(dict(zip(paper["model"], paper["method"]))).fillna(ours["model"])
    if ours["method"].duplicated().any():
        raise ValueError(f"comparison_table: several of our models stand for one method: {ours['method'].tolist()}")
    ours = ours.set_index("method")
    methods = list(paper["method"]) + [m for m in ours.index if m not in set(paper["method"])]
    paper_auc = dict(zip(paper["method"], paper[paper_dataset]))
    reference: dict[str, tuple[str, float]] = {}  # method -> (MedMNIST+ model, its AUC)
    if medmnist_size is not None:
        published = MEDMNIST_PLUS.get(medmnist_size, {})
        reference = {MEDMNIST_PLUS_ROWS[m]: (m, auc) for m, auc in published.items()}
        methods += [m for m in reference if m not in methods]
        ref_col = f"MedMNIST+: ChestMNIST {medmnist_size} px ({MEDMNIST_PLUS_SOURCE})"

    paper_col, ours_col = f"paper: {PAPER_DATA[paper_dataset]}", f"this run: {our_data}"
    numeric, display = [], []
    for method in methods:
        p = paper_auc.get(method, np.nan)
        have = method in ours.index and bool(np.isfinite(ours.at[method, "mAUC"]))
        row = ours.loc[method] if method in ours.index else {}
        mean = float(row["mAUC"]) if have else np.nan
        sd = float(row.get("mAUC_sd", np.nan)) if have else np.nan
        reason = "" if have else (missing.get(method, "not run") if isinstance(missing, Mapping) else missing)
        numeric.append({"method": method, "paper_mAUC": p, "paper_data": PAPER_DATA[paper_dataset],
                        "model": row.get("model", "") if len(row) else "", "ours_mAUC": mean, "ours_mAUC_sd": sd,
                        "ours_n_runs": int(row.get("n_runs", 1)) if have else 0, "ours_data": our_data,
                        "note": reason})
        if medmnist_size is not None:
            ref_model, ref_auc = reference.get(method, ("", np.nan))
            numeric[-1] |= {"medmnist_plus_model": ref_model, "medmnist_plus_mAUC": ref_auc,
                            "medmnist_plus_size": medmnist_size}
        if have:
            shown = f"{mean:.{digits}f} ± {sd:.{digits}f}" if np.isfinite(sd) else f"{mean:.{digits}f}"
        else:
            shown = reason
        display.append({"method": method, "our model": numeric[-1]["model"] or "-",
                        paper_col: f"{p:.{digits}f}" if np.isfinite(p) else "not in paper", ours_col: shown})
        if medmnist_size is not None:
            ref_model, ref_auc = reference.get(method, ("", np.nan))
            display[-1][ref_col] = (f"{ref_auc:.{digits}f} ({ref_model})" if ref_model else
                                    "not published at this size" if not reference else "not in MedMNIST+")
    return pd.DataFrame(numeric), pd.DataFrame(display)

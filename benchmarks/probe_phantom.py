"""Calibration probe of a cxr14 phantom: per-class test AUC of simple models on 32x32 pixels.

A network-free check that each finding carries signal of the intended difficulty (a regularised
linear model) and that an image-level (patient-leaky) split flatters a memorising model (k nearest
neighbours) compared with the patient-wise test_list.txt split:

    python -m ctranscnn phantom cxr14 --out /tmp/calib14 --n 2000 --size 64 --seed 0 --abnormal-only
    .venv/bin/python benchmarks/probe_phantom.py --root /tmp/calib14
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import KNeighborsClassifier

from ctranscnn.phantom.nih_stats import NIH_CLASSES


def per_class_auc(X: np.ndarray, Y: np.ndarray, test: np.ndarray, model: str = "linear") -> dict[str, float]:
    mu, sd = X[~test].mean(0), X[~test].std(0) + 1e-3
    Xs = (X - mu) / sd
    out = {}
    for j, name in enumerate(NIH_CLASSES):
        if Y[~test, j].sum() < 5 or len(set(Y[test, j])) < 2:
            continue  # too few positives to fit or score
        clf = LogisticRegression(C=0.01, max_iter=300) if model == "linear" else KNeighborsClassifier(5)
        clf.fit(Xs[~test], Y[~test, j])
        out[name] = roc_auc_score(Y[test, j], clf.predict_proba(Xs[test])[:, 1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    entry = pd.read_csv(args.root / "Data_Entry_2017.csv")
    paths = {p.name: p for p in args.root.glob("images_*/images/*.png")}
    X = np.stack([np.asarray(Image.open(paths[name]).convert("L").resize((32, 32), Image.BILINEAR), np.float32).ravel()
                  / 255 for name in entry["Image Index"]])
    Y = np.array([[c in s.split("|") for c in NIH_CLASSES] for s in entry["Finding Labels"]], np.uint8)
    patient_test = entry["Image Index"].isin(set((args.root / "test_list.txt").read_text().split())).to_numpy()
    leaky_test = np.zeros(len(entry), bool)  # same test size, images drawn regardless of patient
    leaky_test[np.random.default_rng(args.seed).choice(len(entry), patient_test.sum(), replace=False)] = True
    print(f"{len(entry)} images, {entry['Patient ID'].nunique()} patients, test {patient_test.sum()} images")
    for model in ("linear", "knn"):
        patient, leaky = per_class_auc(X, Y, patient_test, model), per_class_auc(X, Y, leaky_test, model)
        print(f"\n{model}: | finding | test positives | AUC, patient split | AUC, image-level (leaky) split |")
        print("|---|---|---|---|")
        for name in NIH_CLASSES:
            if name in patient and name in leaky:
                j = NIH_CLASSES.index(name)
                print(f"| {name} | {Y[patient_test, j].sum()} | {patient[name]:.3f} | {leaky[name]:.3f} |")
        common = sorted(set(patient) & set(leaky))
        print(f"| **mean ({len(common)} classes)** | | **{np.mean([patient[c] for c in common]):.3f}** | "
              f"**{np.mean([leaky[c] for c in common]):.3f}** |")

if __name__ == "__main__":
    main()

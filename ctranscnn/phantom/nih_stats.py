"""Compact statistics of the real NIH ChestX-ray14 metadata, committed as package tables.

The cxr14 phantom samples its label sets and patient structure from these tables, so a user never
needs the 112,120-row metadata file. Regenerate them with

    python -m ctranscnn.phantom.nih_stats --source ../shared/data/nih/Data_Entry_2017_v2020.csv.gz

Tables (in `ctranscnn/phantom/tables/`):
- `nih_label_combinations.csv`: labels, count. Every distinct label set (801 of them; the findings
  sorted and "|"-joined, "No Finding" for none) with its image count. No tail folding is needed:
  the full table is 30 kB.
- `nih_images_per_patient.csv`: images, patients. How many patients have exactly k images.
- `nih_scalars.csv`: name, value. Follow-up label and view persistence, and demographics.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from ctranscnn.io import write_csv

TABLES = Path(__file__).with_name("tables")
NO_FINDING = "No Finding"
NIH_CLASSES = [
    "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion", "Emphysema", "Fibrosis",
    "Hernia", "Infiltration", "Mass", "Nodule", "Pleural_Thickening", "Pneumonia", "Pneumothorax",
]
REQUIRED = ["Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age", "Patient Gender",
            "View Position"]


def canonical(labels: str) -> str:
    """Sorted, '|'-joined findings; 'No Finding' for an empty set."""
    found = sorted(x for x in labels.split("|") if x and x != NO_FINDING)
    return "|".join(found) or NO_FINDING


def _repeat_probability(df: pd.DataFrame) -> float:
    """P(an image repeats the previous follow-up's exact label set | same patient)."""
    df = df.sort_values(["Patient ID", "Follow-up #"])
    labels, patients = df["combo"].to_numpy(), df["Patient ID"].to_numpy()
    same = patients[1:] == patients[:-1]
    return float((labels[1:] == labels[:-1])[same].mean())


def _view_repeat_probability(df: pd.DataFrame) -> float:
    """P(an image has the previous follow-up's view position | same patient): how much acquisitions persist."""
    df = df.sort_values(["Patient ID", "Follow-up #"])
    views, patients = df["View Position"].to_numpy(), df["Patient ID"].to_numpy()
    same = patients[1:] == patients[:-1]
    return float((views[1:] == views[:-1])[same].mean())


def derive(source: Path) -> dict[str, pd.DataFrame]:
    """The three tables from a Data_Entry_2017(_v2020).csv(.gz) file."""
    df = pd.read_csv(source)
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"{source}: missing columns {missing}")
    df["combo"] = df["Finding Labels"].astype(str).map(canonical)
    unknown = set("|".join(df["combo"]).split("|")) - set(NIH_CLASSES) - {NO_FINDING}
    if unknown:
        raise ValueError(f"{source}: unknown finding labels {sorted(unknown)}")
    combos = df["combo"].value_counts().rename_axis("labels").reset_index(name="count")
    combos = combos.sort_values(["count", "labels"], ascending=[False, True], ignore_index=True)
    per_patient = df.groupby("Patient ID").size().value_counts().sort_index()
    per_patient = per_patient.rename_axis("images").reset_index(name="patients")
    abnormal = df[df["combo"] != NO_FINDING]
    scalars = pd.DataFrame({"name": [
        "n_images", "n_patients", "repeat_prob_all", "repeat_prob_abnormal", "frac_pa", "frac_male",
        "age_mean", "age_std", "view_repeat_prob",
    ], "value": [
        len(df), df["Patient ID"].nunique(), _repeat_probability(df), _repeat_probability(abnormal),
        float((df["View Position"] == "PA").mean()), float((df["Patient Gender"] == "M").mean()),
        float(df["Patient Age"].mean()), float(df["Patient Age"].std()), _view_repeat_probability(df),
    ]})
    return {"nih_label_combinations": combos, "nih_images_per_patient": per_patient, "nih_scalars": scalars}


@dataclass(frozen=True)
class NihTables:
    combos: list[str]
    combo_probs: np.ndarray  # over `combos`
    images_per_patient: np.ndarray  # k values
    patient_probs: np.ndarray  # over `images_per_patient`
    scalars: dict[str, float]

    def multi_hot(self) -> np.ndarray:
        """len(combos) x 14 uint8 matrix of the label sets, NIH class order."""
        out = np.zeros((len(self.combos), len(NIH_CLASSES)), np.uint8)
        index = {c: i for i, c in enumerate(NIH_CLASSES)}
        for row, combo in enumerate(self.combos):
            for name in combo.split("|"):
                if name != NO_FINDING:
                    out[row, index[name]] = 1
        return out


@lru_cache(maxsize=1)
def load_tables(directory: Path = TABLES) -> NihTables:
    combos = pd.read_csv(directory / "nih_label_combinations.csv", keep_default_na=False)
    per_patient = pd.read_csv(directory / "nih_images_per_patient.csv")
    scalars = pd.read_csv(directory / "nih_scalars.csv")
    counts = combos["count"].to_numpy(float)
    patients = per_patient["patients"].to_numpy(float)
    return NihTables(
        combos=combos["labels"].tolist(), combo_probs=counts / counts.sum(),
        images_per_patient=per_patient["images"].to_numpy(int), patient_probs=patients / patients.sum(),
        scalars=dict(zip(scalars["name"], scalars["value"].astype(float))),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="Data_Entry_2017(_v2020).csv(.gz)")
    parser.add_argument("--out", type=Path, default=TABLES, help="table directory (default: the package's)")
    args = parser.parse_args(argv)
    for name, frame in derive(args.source).items():
        write_csv(frame, args.out / f"{name}.csv", float_format="%.6g")
        print(f"wrote {args.out / name}.csv ({len(frame)} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

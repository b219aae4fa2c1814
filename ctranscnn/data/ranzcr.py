"""RANZCR CLiP as released: train.csv (StudyInstanceUID, 11 label columns, PatientID) and train/<uid>.jpg."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ctranscnn.data.errors import Problems, read_csv
from ctranscnn.data.locate import empty_file, missing_message
from ctranscnn.data.records import LabelledImages

# The authors' class names and order (chest_x-rays11_multi_label_classes.txt) -> RANZCR's column names.
RANZCR_COLUMNS = {
    "ETT-Abnormal": "ETT - Abnormal",
    "ETT-Borderline": "ETT - Borderline",
    "ETT-Normal": "ETT - Normal",
    "NGT-Abnormal": "NGT - Abnormal",
    "NGT-Borderline": "NGT - Borderline",
    "NGT-Incompletely-Imaged": "NGT - Incompletely Imaged",
    "NGT-Normal": "NGT - Normal",
    "CVC-Abnormal": "CVC - Abnormal",
    "CVC-Borderline": "CVC - Borderline",
    "CVC-Normal": "CVC - Normal",
    "Swan-Ganz-Catheter-Present": "Swan Ganz Catheter Present",
}
RANZCR_CLASSES = list(RANZCR_COLUMNS)


def read_ranzcr(root: Path, problems: Problems, check_files: bool = True) -> LabelledImages:
    """Every image of train.csv as one split named 'all'."""
    root = Path(root)
    csv_path = root / "train.csv"
    if not csv_path.is_file():
        raise problems.fatal(root, "no RANZCR metadata: expected train.csv (and train/<StudyInstanceUID>.jpg)")
    table = read_csv(csv_path, problems)
    missing = [c for c in ["StudyInstanceUID", *RANZCR_COLUMNS.values(), "PatientID"] if c not in table.columns]
    if missing:
        raise problems.fatal(csv_path, f"missing column(s) {', '.join(map(repr, missing))}")
    values = table[list(RANZCR_COLUMNS.values())].to_numpy()
    ids, paths, patients, rows = [], [], [], []
    absent: list[tuple[int, str]] = []  # (line, file) of listed images without a file: one problem for all
    seen: dict[str, int] = {}
    for line, (uid, patient, vector) in enumerate(zip(table["StudyInstanceUID"], table["PatientID"], values), 2):
        uid = uid.strip()
        bad = [f"{col}={v!r}" for col, v in zip(RANZCR_COLUMNS.values(), vector) if v.strip() not in ("0", "1")]
        if bad:
            problems.add(csv_path, f"labels must be 0 or 1, got {', '.join(bad)}", line)
            continue
        if uid in seen:
            problems.add(csv_path, f"duplicate image id {uid!r} (first on line {seen[uid]})", line)
            continue
        if not patient.strip():  # else all such images would be pooled into one patient by the splits
            problems.add(csv_path, f"blank PatientID for {uid!r}", line)
            continue
        path = root / "train" / f"{uid}.jpg"
        if check_files and not path.is_file():
            absent.append((line, path.name))
            continue
        if check_files and empty_file(path):
            problems.add(csv_path, f"empty image file {path} (0 bytes)", line)
            continue
        seen[uid] = line
        ids.append(f"{uid}.jpg")
        paths.append(path)
        patients.append(patient.strip())
        rows.append(np.array([int(v) for v in vector], dtype=np.uint8))
    if absent:
        problems.add(csv_path, missing_message(absent, len(table), f"{root}/train", "ranzcr"), absent[0][0])
    if not ids:
        problems.add(csv_path, "empty split: no usable images")
    labels = np.stack(rows) if rows else np.zeros((0, len(RANZCR_CLASSES)), np.uint8)
    return LabelledImages("ranzcr", "all", list(RANZCR_CLASSES), ids, paths, labels, patients)

"""NIH ChestX-ray14 as released: Data_Entry_2017(_v2020).csv, images_0NN/images/*.png (or one flat
folder), train_val_list.txt / test_list.txt and BBox_List_2017.csv. Metadata files may be gzipped.
"""
from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ctranscnn.data.errors import Problems, bomb_message, read_csv, read_text
from ctranscnn.data.locate import empty_file, index_images, missing_message
from ctranscnn.data.records import LabelledImages

# The authors' class order (alphabetical; their add72_chest14_classes.txt).
NIH_CLASSES = [
    "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion", "Emphysema", "Fibrosis",
    "Hernia", "Infiltration", "Mass", "Nodule", "Pleural_Thickening", "Pneumonia", "Pneumothorax",
]
NO_FINDING = "No Finding"
BOX_LABELS = {"Infiltrate": "Infiltration"}  # BBox_List_2017.csv spells one class differently
RELEASED_SIZE = 1024  # the released PNGs are 1024 x 1024; boxes are in that pixel space
METADATA_NAMES = ("Data_Entry_2017_v2020.csv", "Data_Entry_2017.csv")
COLUMNS = ("Image Index", "Finding Labels", "Patient ID")


def find_file(root: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        for candidate in (root / name, root / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def image_folders(root: Path) -> list[Path]:
    """Where the released archives put the PNGs: images_001/images ... images_012/images, or images/, or root."""
    return sorted(root.glob("images_*/images")) + [root / "images", root]


def read_nih(root: Path, problems: Problems, check_files: bool = True) -> LabelledImages:
    """Every image of Data_Entry as one split named 'all' (labels in NIH_CLASSES order, 'No Finding' = none)."""
    root = Path(root)
    csv_path = find_file(root, METADATA_NAMES)
    if csv_path is None:
        raise problems.fatal(root, f"no NIH metadata: expected {' or '.join(METADATA_NAMES)} (optionally .gz)")
    table = read_csv(csv_path, problems)
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise problems.fatal(csv_path, f"missing column(s) {', '.join(map(repr, missing))}")
    index = index_images(image_folders(root), problems)
    column = {name: i for i, name in enumerate(NIH_CLASSES)}
    ids, paths, patients, rows = [], [], [], []
    seen: dict[str, int] = {}
    absent: list[tuple[int, str]] = []  # (line, image) of listed images without a file
    for line, (name, findings, patient) in enumerate(table[list(COLUMNS)].itertuples(index=False), 2):
        vector = np.zeros(len(NIH_CLASSES), dtype=np.uint8)
        unknown = [f for f in findings.split("|") if f not in column and f != NO_FINDING]
        if unknown:
            problems.add(csv_path, f"unknown class name(s) {', '.join(map(repr, unknown))} for {name}", line)
            continue
        if name in seen:
            problems.add(csv_path, f"duplicate image id {name!r} (first on line {seen[name]})", line)
            continue
        if not patient.strip():  # else all such images would be pooled into one patient by the splits
            problems.add(csv_path, f"blank Patient ID for {name!r}", line)
            continue
        if check_files and name not in index:
            absent.append((line, name))
            continue
        if check_files and empty_file(index[name]):
            problems.add(csv_path, f"empty image file {index[name]} (0 bytes)", line)
            continue
        seen[name] = line
        vector[[column[f] for f in findings.split("|") if f in column]] = 1
        ids.append(name)
        paths.append(index.get(name, root / "images" / name))
        patients.append(patient.strip())
        rows.append(vector)
    if absent:
        problems.add(csv_path, missing_message(absent, len(table), f"{root}/images_*/images, {root}/images or {root}",
                                               "nih"), absent[0][0])
    if not ids:
        problems.add(csv_path, "empty split: no usable images")
    labels = np.stack(rows) if rows else np.zeros((0, len(NIH_CLASSES)), np.uint8)
    records = LabelledImages("nih", "all", list(NIH_CLASSES), ids, paths, labels, patients)
    records.boxes = read_boxes(root, dict(zip(ids, paths)), problems)
    return records


def read_boxes(root: Path, paths: dict[str, Path], problems: Problems) -> pd.DataFrame | None:
    """BBox_List_2017.csv (None when absent). orig_w/orig_h are the size of the image file the box refers to."""
    box_path = find_file(root, ("BBox_List_2017.csv",))
    if box_path is None:
        return None
    opener = gzip.open if box_path.suffix == ".gz" else open
    rows = []
    with opener(box_path, "rt", newline="", encoding="utf-8") as f:
        # The header spells "Bbox [x,y,w,h]" with unquoted commas, so columns are taken by position.
        for line, fields in enumerate(csv.reader(f), 1):
            if line == 1 or not any(fields):
                continue
            try:
                name, label = fields[0].strip(), fields[1].strip()
                x, y, w, h = (float(v) for v in fields[2:6])
            except (IndexError, ValueError):
                problems.add(box_path, f"expected 'image,label,x,y,w,h', got {','.join(fields)[:80]!r}", line)
                continue
            label = BOX_LABELS.get(label, label)
            if label not in NIH_CLASSES:
                problems.add(box_path, f"unknown class name {label!r}", line)
                continue
            try:
                rows.append((name, label, x, y, w, h, *image_size(paths.get(name))))
            except OSError as e:  # PIL's UnidentifiedImageError is an OSError
                problems.add(box_path, f"image of box {name!r} is unreadable or corrupt ({e})", line)
            except Image.DecompressionBombError as e:
                problems.add(box_path, f"image of box {name!r}: {bomb_message(e)}", line)
    return pd.DataFrame(rows, columns=["image_id", "label", "x", "y", "w", "h", "orig_w", "orig_h"])


def image_size(path: Path | None) -> tuple[int, int]:
    """Width, height from the file header when the image is present, else the released 1024 x 1024."""
    if path is not None and path.is_file():
        with Image.open(path) as im:
            return im.size
    return RELEASED_SIZE, RELEASED_SIZE


def read_name_list(path: Path, problems: Problems) -> list[str]:
    """train_val_list.txt / test_list.txt: one image name per line."""
    names = [n.strip() for n in read_text(path, problems).splitlines() if n.strip()]
    if not names:
        problems.add(path, "empty split: no images listed")
    return names

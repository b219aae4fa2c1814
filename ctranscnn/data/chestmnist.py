"""ChestMNIST (MedMNIST v2/v3): NIH ChestX-ray14 resized to 28/64/128/224 px in one .npz with
`{train,val,test}_{images,labels}`. Images live in the array, so splits carry them as `pixels`.

ChestMNIST orders its 14 labels as NIH's original list; they are reordered to the authors'
alphabetical order (NIH_CLASSES) so models and tables line up with the NIH loaders.
"""
from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path

import numpy as np

from ctranscnn.data.errors import DataError, Problems
from ctranscnn.data.listfile import SPLITS
from ctranscnn.data.nih import NIH_CLASSES
from ctranscnn.data.records import LabelledImages

MEDMNIST_ORDER = [
    "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
    "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia",
]
# Zenodo record of MedMNIST v3: size -> (file name, MD5 published by MedMNIST).
RELEASES = {
    28: ("chestmnist.npz", "02c8a6516a18b556561a56cbdd36c4a8"),
    64: ("chestmnist_64.npz", "9de6cd0b934ebb5b7426cfba5efbae16"),
    128: ("chestmnist_128.npz", "db107e5590b27930b62dbaf558aebee3"),
    224: ("chestmnist_224.npz", "45bd33e6f06c3e8cdb481c74a89152aa"),
}
URL = "https://zenodo.org/records/10519652/files/{name}?download=1"


def find_npz(root: Path, size: int | None = None) -> Path:
    """`root` is the .npz itself or a folder holding one ChestMNIST file (pick among several with `size`)."""
    root = Path(root)
    if root.is_file():
        return root
    names = [RELEASES[size][0]] if size is not None else [name for name, _ in RELEASES.values()]
    found = [root / n for n in names if (root / n).is_file()]
    if len(found) != 1:
        what = "none" if not found else ", ".join(p.name for p in found) + " (choose one with size=)"
        raise DataError(f"{root}: expected one ChestMNIST file among {', '.join(names)}, found {what}")
    return found[0]


def read_chestmnist(root: Path, problems: Problems, size: int | None = None) -> dict[str, LabelledImages]:
    """The released train/val/test splits (MedMNIST's official split)."""
    path = find_npz(root, size)
    order = [MEDMNIST_ORDER.index(c) for c in NIH_CLASSES]
    splits = {}
    with np.load(path) as npz:
        for split in SPLITS:
            keys = (f"{split}_images", f"{split}_labels")
            if any(k not in npz.files for k in keys):
                problems.add(path, f"missing array(s) {', '.join(k for k in keys if k not in npz.files)}")
                continue
            images, labels = npz[keys[0]], npz[keys[1]]
            if labels.ndim != 2 or labels.shape[1] != len(MEDMNIST_ORDER):
                problems.add(path, f"field {keys[1]}: label vectors of shape {labels.shape[1:]}, expected ({len(MEDMNIST_ORDER)},)")
                continue
            if len(images) != len(labels):
                problems.add(path, f"field {keys[0]}: {len(images)} images for {len(labels)} label vectors")
                continue
            if len(images) == 0:
                problems.add(path, f"field {keys[0]}: empty split")
                continue
            bad = np.flatnonzero(~np.isin(labels, (0, 1)).all(axis=1))
            if len(bad):
                problems.add(path, f"field {keys[1]}: labels must be 0 or 1 (rows {', '.join(map(str, bad[:5]))}...)")
                continue
            if images.dtype != np.uint8 or images.ndim not in (3, 4):
                problems.add(path, f"field {keys[0]}: expected uint8 N x H x W (x 3), got {images.dtype} {images.shape}")
                continue
            n = len(images)
            splits[split] = LabelledImages(
                dataset="chestmnist", split=split, classes=list(NIH_CLASSES),
                image_ids=[f"{split}_{i:06d}" for i in range(n)], paths=[path] * n,
                labels=np.ascontiguousarray(labels[:, order].astype(np.uint8)), pixels=images,
            )
    return splits


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_chestmnist(dest: Path, size: int = 28) -> Path:
    """Fetch the published .npz into `dest` and verify its MD5 (only when the user asks for it)."""
    if size not in RELEASES:
        raise ValueError(f"ChestMNIST size must be one of {sorted(RELEASES)}, got {size}")
    name, md5 = RELEASES[size]
    target = Path(dest) / name
    if target.is_file() and md5sum(target) == md5:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{name}.{os.getpid()}.part")
    try:
        urllib.request.urlretrieve(URL.format(name=name), tmp)
        if (got := md5sum(tmp)) != md5:
            raise DataError(f"{URL.format(name=name)}: checksum mismatch (MD5 {got}, expected {md5}); nothing kept")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target

"""ChestMNIST (MedMNIST v2/v3): NIH ChestX-ray14 resized to 28/64/128/224 px in one .npz with
`{train,val,test}_{images,labels}`. Images live in the array, so splits carry them as `pixels`.

ChestMNIST orders its 14 labels as NIH's original list; they are reordered to the authors'
alphabetical order (NIH_CLASSES) so models and tables line up with the NIH loaders.
"""
from __future__ import annotations

import hashlib
import urllib.request
from pathlib import Path

import numpy as np

from ctranscnn.data.errors import DataError, Problems
from ctranscnn.data.listfile import SPLITS
from ctranscnn.data.nih import NIH_CLASSES
from ctranscnn.data.records import LabelledImages
from ctranscnn.io import atomic_path

MEDMNIST_ORDER = [
    "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
    "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia",
]
SIZES = (28, 64, 128, 224)


def release(size: int) -> tuple[str, str, str]:
    """(file name, URL, MD5) of the ChestMNIST file at `size` px, as the `medmnist` package publishes them."""
    from medmnist.info import INFO

    if size not in SIZES:
        raise ValueError(f"ChestMNIST size must be one of {', '.join(map(str, SIZES))}, got {size}")
    info, suffix = INFO["chestmnist"], "" if size == 28 else f"_{size}"
    url = info[f"url{suffix}"]
    return url.split("?")[0].rsplit("/", 1)[-1], url, info[f"MD5{suffix}"]


def official_sizes() -> dict[str, int]:
    """Images per split of MedMNIST's own split (78,468 / 11,219 / 22,433)."""
    from medmnist.info import INFO

    return dict(INFO["chestmnist"]["n_samples"])


def npz_size(path: Path) -> int:
    """Image side (px) of a ChestMNIST .npz, read from its train images' header (no pixels loaded)."""
    with np.load(path, mmap_mode="r") as npz:
        if "train_images" not in npz.files:
            raise DataError(f"{path}: not a ChestMNIST file (no train_images array)")
        return int(npz["train_images"].shape[1])


def find_npz(root: Path, size: int | None = None) -> Path:
    """`root` is the .npz itself or a folder holding one ChestMNIST file (pick among several with `size`)."""
    root = Path(root)
    if root.is_file():
        return root
    names = [release(s)[0] for s in ((size,) if size is not None else SIZES)]
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
    name, url, md5 = release(size)
    target = Path(dest) / name
    if target.is_file() and md5sum(target) == md5:
        return target
    with atomic_path(target) as tmp:  # a cut or corrupt download leaves nothing behind
        urllib.request.urlretrieve(url, tmp)
        if (got := md5sum(tmp)) != md5:
            raise DataError(f"{url}: checksum mismatch (MD5 {got}, expected {md5}); nothing kept")
    return target

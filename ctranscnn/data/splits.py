"""Train/val/test splits of every supported dataset, their leakage report and traceable membership files.

- `paper`: the authors' lists exactly (image-level; patients leak, so loading it warns loudly).
- `official`: NIH's train_val_list.txt / test_list.txt, validation carved from train_val by patient;
  for ChestMNIST the released split.
- `patient`: seeded, patient-grouped split (default 70/10/20) that keeps label prevalence close
  across splits (iterative stratification over patients).
- `image`: seeded, label-stratified split of images that ignores patients (default 90/7/3, the shares of
  the authors' NIH lists): the authors' protocol for any dataset, so it leaks patients and warns like `paper`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ctranscnn.data.chestmnist import read_chestmnist
from ctranscnn.data.errors import DataError, Problems
from ctranscnn.data.listfile import SPLITS, ListEntry, find_list_files, read_class_file, read_list_file
from ctranscnn.data.locate import empty_file, index_images, missing_message
from ctranscnn.data.nih import find_file, read_name_list, read_nih
from ctranscnn.data.ranzcr import read_ranzcr
from ctranscnn.data.records import LabelledImages
from ctranscnn.io import atomic_write_text, write_json

DATASETS = ("nih", "ranzcr", "chestmnist", "list")
SPLIT_KINDS = ("paper", "official", "patient", "image")
DEFAULT_SPLIT = {"nih": "paper", "ranzcr": "paper", "chestmnist": "official", "list": "paper"}
PAIRS = (("train", "val"), ("train", "test"), ("val", "test"))
# Default train/val/test shares: the patient split's, and the authors' NIH lists' (46,579 / 3,624 / 1,556 images).
PATIENT_FRACTIONS = (0.7, 0.1, 0.2)
IMAGE_FRACTIONS = (0.9, 0.07, 0.03)
LEAKY = ("paper", "image")  # image-level splits: a patient's images may sit on both sides
MISSING = ("error", "skip")  # what a listed image without a file is: a problem, or left out (partial downloads)


class LeakageWarning(UserWarning):
    """The split puts images of one patient on both sides, so its test numbers are optimistic."""


class MissingImagesWarning(UserWarning):
    """data.missing=skip left out listed images whose files are missing (the splits are smaller than released)."""


def load_splits(
    dataset: str,
    root: str | Path,
    split: str | None = None,
    lists: str | Path | None = None,
    seed: int = 0,
    fractions: tuple[float, float, float] | None = None,
    check_files: bool = True,
    findings_only: bool = False,
    size: int | None = None,
    missing: str = "error",
) -> dict[str, LabelledImages]:
    """{'train', 'val', 'test'} -> LabelledImages for `dataset` read from `root` as released.

    lists: folder with the authors' list files (needed by split='paper').
    fractions: train/val/test shares of the patient split (default 0.7/0.1/0.2) or the image split
        (default 0.9/0.07/0.03); `official` carves validation out of train_val with the share
        val / (train + val) (0.125 by default, as ChestMNIST did).
    check_files: False reads metadata only (no image needs to exist), e.g. for leakage analysis.
    findings_only: drop NIH images labelled 'No Finding' before an official/patient/image split (the
        authors' subset is abnormal-only).
    size: ChestMNIST image size when the folder holds several .npz files.
    missing: 'error' (a listed image without a file is a problem) or 'skip' (NIH/RANZCR: the splits are made from
        the full metadata, then each keeps only its images whose files exist; e.g. a few of NIH's twelve archives
        unpacked). What was left out is warned about (MissingImagesWarning) and kept in each split's `dropped`.
    Raises DataError listing every problem found.
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")
    split = split or DEFAULT_SPLIT[dataset]
    if split not in SPLIT_KINDS:
        raise ValueError(f"split must be one of {', '.join(SPLIT_KINDS)}, got {split!r}")
    if missing not in MISSING:
        raise ValueError(f"missing must be one of {', '.join(MISSING)}, got {missing!r}")
    skip_missing = missing == "skip" and check_files
    if skip_missing:
        if dataset not in ("nih", "ranzcr"):
            raise DataError(f"missing='skip' is for nih and ranzcr (file paths from their metadata); got {dataset!r}")
        check_files = False  # split on the full metadata, so a partial download keeps each image's split
    root, problems = Path(root), Problems()
    if fractions is None:
        fractions = IMAGE_FRACTIONS if split == "image" else PATIENT_FRACTIONS
    if split == "image":
        splits = image_split(_pooled(_read_all(dataset, root, lists, problems, check_files, size)), fractions, seed,
                             findings_only)
    elif dataset == "chestmnist":
        if split != "official":
            raise DataError(f"chestmnist has only its released split (split='official'); got split={split!r}")
        splits = read_chestmnist(root, problems, size)
    elif split == "paper":
        if lists is None:
            raise DataError(f"split='paper' of {dataset} needs lists=<folder with the authors' split lists>")
        splits = _paper(dataset, root, Path(lists), problems, check_files)
    elif dataset == "list":
        raise DataError(f"dataset 'list' has only the split its lists define (split='paper'); got split={split!r}")
    else:
        table = (read_nih if dataset == "nih" else read_ranzcr)(root, problems, check_files)
        if findings_only:
            table = table.take(np.flatnonzero(table.labels.any(axis=1)), "all")
        if split == "official":
            if dataset != "nih":
                raise DataError("split='official' exists for nih and chestmnist only (RANZCR's test labels are hidden)")
            splits = _official(root, table, problems, fractions, seed)
        else:
            parts = stratified_group_split(table.labels, table.patient_ids, fractions, seed)
            splits = {name: table.take(idx, name) for name, idx in zip(SPLITS, parts)}
    if skip_missing:
        problems.raise_if_any()
        splits = {name: drop_missing(records) for name, records in splits.items()}
        if any(s.dropped["images"] for s in splits.values()):
            warnings.warn_explicit(MissingImagesWarning(dropped_message(splits)), MissingImagesWarning, str(root), 0)
    for name in SPLITS:
        if name in splits and len(splits[name]) == 0:
            problems.add(root, f"empty {name} split: no images (too few usable images or patients for the split)")
    problems.raise_if_any()
    if split in LEAKY:
        # Located at the dataset (line 0: no source line to show), not at a line of this package: the
        # default formatting would otherwise print the calling source line under the message.
        where = str(lists if split == "paper" and lists is not None else root)
        warnings.warn_explicit(LeakageWarning(_leak_message(dataset, split, leakage_report(splits))), LeakageWarning,
                               where, 0)
    return splits


def _read_all(dataset: str, root: Path, lists: Path | str | None, problems: Problems, check_files: bool,
              size: int | None) -> list[LabelledImages]:
    """Every labelled image of a source, whatever split it ships with (pooled by the image split)."""
    if dataset == "chestmnist":
        return list(read_chestmnist(root, problems, size).values())
    if dataset == "list":
        if lists is None:
            raise DataError("dataset 'list' needs lists=<folder with the list files> for any split")
        parts = _paper(dataset, root, Path(lists), problems, check_files)
        problems.raise_if_any()  # duplicates across the lists would be pooled twice
        return list(parts.values())
    return [(read_nih if dataset == "nih" else read_ranzcr)(root, problems, check_files)]


def drop_missing(records: LabelledImages) -> LabelledImages:
    """`records` without the images whose files do not exist; `dropped` counts them, in total and per class."""
    present = np.array([Path(p).is_file() for p in records.paths], dtype=bool)
    kept = records.take(np.flatnonzero(present), records.split)
    gone = records.labels[~present]
    kept.dropped = {"images": int((~present).sum()),
                    "per_class": dict(zip(records.classes, map(int, gone.sum(axis=0))))}
    return kept


def dropped_message(splits: dict[str, LabelledImages]) -> str:
    """What missing='skip' left out, per split and per class (all splits together), in one line."""
    per_split = ", ".join(f"{name} {s.dropped['images']:,} of {s.dropped['images'] + len(s):,}"
                          for name, s in splits.items())
    classes = next(iter(splits.values())).classes
    per_class = ", ".join(f"{c} {sum(s.dropped['per_class'][c] for s in splits.values()):,}" for c in classes)
    return (f"data.missing=skip: left out listed images whose files are missing: {per_split}; positives left out "
            f"per class: {per_class}")


def _pooled(parts: list[LabelledImages]) -> LabelledImages:
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    patients = None if any(p.patient_ids is None for p in parts) else [i for p in parts for i in p.patient_ids]
    boxes = [p.boxes for p in parts if p.boxes is not None]
    pixels = None if any(p.pixels is None for p in parts) else np.concatenate([p.pixels for p in parts])
    return LabelledImages(first.dataset, "all", list(first.classes), [i for p in parts for i in p.image_ids],
                          [x for p in parts for x in p.paths], np.concatenate([p.labels for p in parts]),
                          patients, pd.concat(boxes, ignore_index=True) if boxes else None, pixels)


def image_split(table: LabelledImages, fractions: tuple[float, ...] = IMAGE_FRACTIONS, seed: int = 0,
                findings_only: bool = False) -> dict[str, LabelledImages]:
    """The authors' protocol for any dataset: a seeded, label-stratified split of images that ignores patients
    (each image is its own group in `stratified_group_split`)."""
    if findings_only:
        table = table.take(np.flatnonzero(table.labels.any(axis=1)), "all")
    parts = stratified_group_split(table.labels, [str(i) for i in range(len(table))], fractions, seed)
    return {name: table.take(idx, name) for name, idx in zip(SPLITS, parts)}


def _paper(dataset: str, root: Path, lists: Path, problems: Problems, check_files: bool) -> dict[str, LabelledImages]:
    """The authors' lists; their folder prefixes are resolved by file name against the user's folders."""
    files = find_list_files(lists)
    classes = read_class_file(files["classes"], problems)
    table, by_name = None, {}
    index: dict[str, Path] | None = None  # file name -> path under root, scanned only when needed
    if dataset != "list":
        table = (read_nih if dataset == "nih" else read_ranzcr)(root, problems, check_files=False)
        by_name = {name: i for i, name in enumerate(table.image_ids)}
        for line, name in enumerate(classes, 1):
            if name not in table.classes:
                problems.add(files["classes"], f"unknown class name {name!r} for {dataset}", line)
    splits: dict[str, LabelledImages] = {}
    for name in SPLITS:
        entries = read_list_file(files[name], len(classes), problems, files["classes"])
        keep: list[ListEntry] = []
        rows: list[int] = []
        paths: list[Path] = []
        absent: list[tuple[int, str]] = []  # (line, path) of listed images without a file
        for e in entries:
            file_name = e.path.replace("\\", "/").rsplit("/", 1)[-1]
            if table is not None:
                if file_name not in by_name:
                    problems.add(files[name], f"image {file_name!r} is not in the {dataset} metadata under {root}", e.line)
                    continue
                path = table.paths[by_name[file_name]]
            else:
                path = root / e.path
                if check_files and not path.is_file():
                    if index is None:
                        index = index_images([root], problems, recursive=True)
                    path = index.get(file_name, path)
            if check_files and not path.is_file():
                absent.append((e.line, e.path))
                continue
            if check_files and empty_file(path):
                problems.add(files[name], f"empty image file {path} (0 bytes)", e.line)
                continue
            keep.append(e)
            paths.append(path)
            if table is not None:
                rows.append(by_name[file_name])
        if absent:
            problems.add(files[name], missing_message(absent, len(entries), f"{root} (by file name)", dataset), absent[0][0])
        labels = np.stack([e.labels for e in keep]) if keep else np.zeros((0, len(classes)), np.uint8)
        if table is not None:
            base = table.take(rows, name)
            splits[name] = dataclasses.replace(base, classes=classes, labels=labels)
        else:
            # Relative paths as ids: private sets may reuse a file name in different folders.
            ids = [e.path.replace("\\", "/") for e in keep]
            splits[name] = LabelledImages(dataset, name, classes, ids, paths, labels)
    _check_disjoint(splits, files, problems)
    return splits


def _check_disjoint(splits: dict[str, LabelledImages], files: dict[str, Path], problems: Problems) -> None:
    for a, b in PAIRS:
        shared = sorted(set(splits[a].image_ids) & set(splits[b].image_ids))
        if shared:
            problems.add(files[b], f"duplicate image id(s) also in the {a} list ({files[a].name}): {', '.join(shared[:5])}"
                         + (f" and {len(shared) - 5} more" if len(shared) > 5 else ""))


def _official(root: Path, table: LabelledImages, problems: Problems, fractions, seed: int) -> dict[str, LabelledImages]:
    """NIH's train_val_list.txt / test_list.txt; validation carved out of train_val by patient."""
    by_name = {name: i for i, name in enumerate(table.image_ids)}
    picked = {}
    for key, file_name in (("train_val", "train_val_list.txt"), ("test", "test_list.txt")):
        path = find_file(root, (file_name,))
        if path is None:
            raise problems.fatal(root, f"split='official' needs {file_name} (from the NIH release)")
        names = read_name_list(path, problems)
        unknown = [n for n in names if n not in by_name]
        if unknown:
            problems.add(path, f"{len(unknown)} image(s) not in the metadata, e.g. {', '.join(unknown[:3])}")
        # Images dropped from the table (findings_only, or reported problems) are skipped here too.
        picked[key] = np.array([by_name[n] for n in names if n in by_name], dtype=np.int64)
    train_val = table.take(picked["train_val"], "train_val")
    share = np.array(fractions[:2], dtype=float)
    train_idx, val_idx = stratified_group_split(train_val.labels, train_val.patient_ids, tuple(share / share.sum()), seed)
    return {"train": train_val.take(train_idx, "train"), "val": train_val.take(val_idx, "val"),
            "test": table.take(picked["test"], "test")}


def stratified_group_split(
    labels: np.ndarray, groups: list[str] | None, fractions: tuple[float, ...], seed: int = 0
) -> list[np.ndarray]:
    """Image indices of each part; every group (patient) lands in one part.

    Iterative stratification (Sechidis et al., 2011) lifted to groups: labels are visited from the
    rarest; each still-unplaced patient carrying it goes to the part that most lacks that label among
    the parts still short of images (ties: the part that most lacks images, then a seeded coin). Patients without any label fill
    the parts by image count. Indices keep their original order within a part.
    """
    if groups is None:
        raise DataError("a patient-grouped split needs patient ids, and this source has none")
    fr = np.asarray(fractions, dtype=float)
    if len(fr) < 2 or (fr < 0).any() or fr.sum() <= 0:
        raise ValueError(f"fractions must be >= 0 with a positive sum, got {fractions}")
    fr = fr / fr.sum()
    codes, _ = pd.factorize(pd.Series(groups, dtype=str))
    n_groups = codes.max() + 1 if len(codes) else 0
    per_group = np.zeros((n_groups, labels.shape[1]), dtype=np.int64)
    np.add.at(per_group, codes, labels.astype(np.int64))
    images = np.bincount(codes, minlength=n_groups)
    want_label = fr[:, None] * per_group.sum(axis=0)[None, :]
    want_images = fr * len(codes)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_groups)
    part = np.full(n_groups, -1)
    left = per_group.sum(axis=0)

    def place(g: int, need: np.ndarray) -> None:
        # Parts that already hold their share of images are passed over, so that the rare labels of a
        # small dataset do not all land in the largest part.
        open_ = want_images > 0 if (want_images > 0).any() else np.ones(len(fr), bool)
        need = np.where(open_, need, -np.inf)
        best = np.flatnonzero(need == need.max())
        if len(best) > 1:
            best = best[want_images[best] == want_images[best].max()]
        p = best[0] if len(best) == 1 else rng.choice(best)
        part[g] = p
        want_label[p] -= per_group[g]
        want_images[p] -= images[g]

    while (left > 0).any():
        c = int(np.argmin(np.where(left > 0, left, np.iinfo(np.int64).max)))
        for g in order[(per_group[order, c] > 0) & (part[order] < 0)]:
            place(g, want_label[:, c])
            left -= per_group[g]
    for g in order[part[order] < 0]:
        place(g, want_images)
    return [np.flatnonzero(part[codes] == p) for p in range(len(fr))]


def leakage_report(splits: dict[str, LabelledImages]) -> dict:
    """Patients shared between each pair of splits (None where ids are unknown) and box images in train."""
    shared: dict[str, int | None] = {}
    for a, b in PAIRS:
        if a in splits and b in splits:
            pa, pb = splits[a].patient_ids, splits[b].patient_ids
            shared[f"{a}-{b}"] = None if pa is None or pb is None else len(set(pa) & set(pb))
    train = splits.get("train")
    boxes = None if train is None or train.boxes is None else int(train.boxes["image_id"].nunique())
    return {"patients_shared": shared, "box_images_in_train": boxes}


def _leak_message(dataset: str, split: str, report: dict) -> str:
    shared = report["patients_shared"]
    if any(v is None for v in shared.values()):
        text = (f"the {split} split of {dataset} is image-level and its source carries no patient ids, so patient "
                "leakage between train/val/test cannot be ruled out")
    else:
        pairs = ", ".join(f"{v:,} {k}" for k, v in shared.items())
        text = f"the {split} split of {dataset} is image-level and leaks patients: {pairs} patients shared"
    if report["box_images_in_train"]:
        text += f"; {report['box_images_in_train']:,} box-annotated images are in train"
    fix = "use split='patient'" if dataset in ("nih", "ranzcr") else "use patient-disjoint lists"
    return text + f". Its test numbers are optimistic; {fix} for leak-free numbers."


def save_split_files(splits: dict[str, LabelledImages], out_dir: str | Path) -> dict[str, str]:
    """Write `out_dir/splits/{classes,train,val,test}.txt` (the authors' list format, image ids as paths)
    and `sha256.json` with each file's SHA-256, so every number can be traced to its exact images."""
    folder = Path(out_dir) / "splits"
    first = next(iter(splits.values()))
    texts = {"classes.txt": "\n".join(first.classes)}
    for name, records in splits.items():
        texts[f"{name}.txt"] = "\n".join(
            f"{image_id}\t{','.join(map(str, row.tolist()))}" for image_id, row in zip(records.image_ids, records.labels)
        )
    digests = {}
    for file_name, text in texts.items():
        atomic_write_text(folder / file_name, text)
        digests[file_name] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    write_json(folder / "sha256.json", digests)
    return digests

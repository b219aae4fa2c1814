"""The authors' list format: `relative/path<TAB>0,1,0,...` per line, class file one name per line.

Neither file has a trailing newline in the authors' release; both forms are read. The same format
serves their NIH subset and RANZCR splits and private data (e.g. the tongue set), and is what
`save_split_files` writes, so saved splits can be read back.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ctranscnn.data.errors import DataError, Problems, read_text

SPLITS = ("train", "val", "test")


@dataclass
class ListEntry:
    path: str  # as written in the list (the authors' folder prefixes included)
    labels: np.ndarray  # uint8 C
    line: int  # 1-based, for error messages


def read_class_file(path: Path, problems: Problems) -> list[str]:
    lines = read_text(path, problems).splitlines()
    classes = [name.strip() for name in lines if name.strip()]
    if not classes:
        problems.add(path, "class file lists no classes")
    seen: set[str] = set()
    for i, name in enumerate(lines, 1):
        if name.strip() in seen:
            problems.add(path, f"class {name.strip()!r} listed twice", i)
        seen.add(name.strip())
    return classes


def read_list_file(path: Path, num_classes: int, problems: Problems, class_file: Path | None = None) -> list[ListEntry]:
    """Entries of one split list. Bad lines are reported to `problems` and left out."""
    entries: list[ListEntry] = []
    lengths: dict[int, int] = {}  # label-vector length -> lines, to tell a wrong class file from a wrong line
    bad_length: list[tuple[int, int]] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(read_text(path, problems).splitlines(), 1):
        if not raw.strip():
            continue
        fields = raw.rstrip("\r").split("\t")
        if len(fields) != 2 or not fields[0]:
            problems.add(path, f"expected 'path<TAB>0,1,...', got {raw[:80]!r}", i)
            continue
        name, vector = fields[0].strip(), fields[1].strip().split(",")
        lengths[len(vector)] = lengths.get(len(vector), 0) + 1
        if len(vector) != num_classes:
            bad_length.append((i, len(vector)))
            continue
        if any(v.strip() not in ("0", "1") for v in vector):
            problems.add(path, f"labels must be 0 or 1, got {fields[1].strip()!r}", i)
            continue
        if name in seen:
            problems.add(path, f"duplicate image id {name!r} (first on line {seen[name]})", i)
            continue
        seen[name] = i
        entries.append(ListEntry(name, np.array([int(v) for v in vector], dtype=np.uint8), i))
    common = max(lengths, key=lengths.get) if lengths else num_classes
    if common != num_classes and lengths[common] == sum(lengths.values()):
        where = class_file if class_file is not None else "class list"
        problems.add(where, f"lists {num_classes} classes but every label vector in {path} has {common}")
    else:
        for i, n in bad_length:
            problems.add(path, f"label vector has {n} values, expected {num_classes} (one per class)", i)
    if not entries and not bad_length:
        problems.add(path, "empty split: no images listed")
    return entries


def find_list_files(lists_dir: Path) -> dict[str, Path]:
    """The class file and the train/val/test lists in a folder, recognised by name.

    Works for the authors' names (`add72_chest14_train_labels.txt`, `chest_x-rays11_kaggle_val.txt`,
    `chest_x-rays11_multi_label_classes.txt`, `tongue_test.txt`) and for `save_split_files` output.
    """
    lists_dir = Path(lists_dir)
    if not lists_dir.is_dir():
        raise DataError(f"{lists_dir}: split list folder not found")
    files = sorted(p for p in lists_dir.iterdir() if p.suffix == ".txt")
    found: dict[str, Path] = {}
    for key in ("classes",) + SPLITS:
        pattern = re.compile(rf"(^|[_\-.]){key}([_\-.]|$)")
        hits = [p for p in files if pattern.search(p.stem)]
        if key != "classes":
            hits = [p for p in hits if p not in found.values()]
        if len(hits) != 1:
            what = "no file" if not hits else f"{len(hits)} files ({', '.join(p.name for p in hits)})"
            raise DataError(f"{lists_dir}: expected one *{key}*.txt list, found {what}")
        found[key] = hits[0]
    return found

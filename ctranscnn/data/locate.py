"""Finding image files by name, so lists written against another folder layout work on a user's download."""
from __future__ import annotations

import os
from pathlib import Path

from ctranscnn.data.errors import Problems

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def index_images(folders: list[Path], problems: Problems, recursive: bool = False) -> dict[str, Path]:
    """File name -> path of every image in `folders` (searched in order). A name found twice is a problem."""
    index: dict[str, Path] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        walker = os.walk(folder) if recursive else [(str(folder), None, os.listdir(folder))]
        for dirpath, _, names in walker:
            for name in names:
                if not name.lower().endswith(IMAGE_SUFFIXES):
                    continue
                path = Path(dirpath) / name
                if name in index and index[name] != path:
                    problems.add(path, f"duplicate image id {name!r}: also at {index[name]}")
                    continue
                index[name] = path
    return index


def empty_file(path: Path) -> bool:
    """True for an existing zero-byte file (an interrupted copy): found by size, without decoding."""
    try:
        return os.stat(path).st_size == 0
    except OSError:
        return False


# How to go on without the missing files, for the datasets whose loaders can (data.missing=skip, see load_splits).
SKIP_HINT = {"nih": "; to use only the images present, set data.missing=skip (reproduce.sh: NIH_MISSING=skip)",
             "ranzcr": "; to use only the images present, set data.missing=skip"}


def missing_message(absent: list[tuple[int, str]], listed: int, where: str, dataset: str) -> str:
    """One line for every listed image without a file (a partial NIH download misses ~10,000 per archive), and
    how to use the images that are there instead."""
    more = f" and {len(absent) - 1:,} more" if len(absent) > 1 else ""
    return (f"missing image {absent[0][1]!r}{more} ({len(absent):,} of {listed:,} listed images not found in {where})"
            + SKIP_HINT.get(dataset, ""))

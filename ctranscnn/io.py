"""Shared file output on the ground floor: every file the package writes goes through this module.

Owns atomic writes (a reader never sees a half-written table, run file or figure: the bytes go to a temporary
file in the same directory, which then replaces the target in one `os.replace`), and the four formats built on
them: text/bytes, JSON (numpy-aware; NaN and infinities written as null so the file is valid JSON), CSV (pandas)
and figures (PNG + PDF with reproducible bytes). Imports nothing from ctranscnn, so data, engine, phantom,
gradcam and report can all use it.
"""
from __future__ import annotations

import json
import math
import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "save_figure", "to_jsonable", "write_csv",
           "write_json"]


def _create_temp(path: Path) -> Path:
    """A new empty file next to `path`, with the target's suffix (matplotlib picks the format by it).

    Created with os.open(..., 0o666) rather than tempfile.mkstemp: mkstemp makes files 0600, which would leave
    every result readable only by its writer; here the kernel applies the umask (and any default ACL) exactly as
    for a plain open().
    """
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{path.suffix}")
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return tmp
        except FileExistsError:
            continue
        except OSError as err:  # e.g. a read-only folder: name the file being written, not the temporary one
            raise type(err)(err.errno, err.strerror, str(path)) from None
    raise FileExistsError(f"{path.parent}: could not create a temporary file for {path.name}")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it replaces `path` in one step, on error it is removed
    (and an existing `path` is left as it was)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same directory, so os.replace never crosses file systems.
    tmp = _create_temp(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """UTF-8, newlines written as given (no platform translation), so outputs are byte-identical everywhere."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(obj: Any) -> Any:
    """`obj` with numpy scalars/arrays as Python numbers/lists, tuples as lists, paths and unknown objects as
    strings, and NaN/inf as None (JSON has no NaN; Python's json would write the invalid token `NaN`)."""
    if isinstance(obj, dict):
        return {(k.item() if isinstance(k, np.generic) else k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    return str(obj)


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    """Atomically write `obj` as JSON (see `to_jsonable`), keys in insertion order, with a final newline."""
    return atomic_write_text(path, json.dumps(to_jsonable(obj), indent=indent, allow_nan=False) + "\n")


def write_csv(frame: pd.DataFrame, path: str | os.PathLike, **kwargs: Any) -> Path:
    """Atomically write a DataFrame as CSV; defaults `index=False`, `lineterminator="\\n"` (overridable)."""
    kwargs = {"index": False, "lineterminator": "\n", **kwargs}
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, **kwargs)
    return Path(path)


def save_figure(fig: Figure, stem: str | os.PathLike, dpi: int = 150, close: bool = False) -> dict[str, Path]:
    """Write `<stem>.png` and `<stem>.pdf` atomically; returns {'png': path, 'pdf': path}."""
    stem = Path(stem)
    # No creation date / software stamps, so re-running unchanged code gives byte-identical files.
    meta = {"png": {"Software": None}, "pdf": {"CreationDate": None, "Producer": None}}
    paths = {}
    for fmt in ("png", "pdf"):
        with atomic_path(stem.with_suffix(f".{fmt}")) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight", metadata=meta[fmt])
        paths[fmt] = stem.with_suffix(f".{fmt}")
    if close:
        import matplotlib.pyplot as plt  # only callers that ask to close pay for pyplot

        plt.close(fig)
    return paths

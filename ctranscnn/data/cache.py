"""Decode cache: every image decoded and resized once into a uint8 memory-mapped .npy (N x H x W x C).

Decoding 1024 px PNGs every epoch is the real bottleneck of this task. The cache file is named by a
hash of (image ids, paths, file sizes and mtimes, decode settings), so it is reused across runs and
processes and rebuilt when any input changes. Builders take a file lock (concurrent builders wait
for one another) and build it atomically (`ctranscnn.io.atomic_path`), so no reader sees a
half-written cache and nothing is kept from a failed build.
"""
from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm import tqdm

from ctranscnn.data.errors import DataError
from ctranscnn.data.records import LabelledImages
from ctranscnn.data.transforms import PreprocessConfig, decode
from ctranscnn.io import atomic_path

VERSION = 1  # bump when decoding changes so stale caches are not reused
CHUNK = 64


def cache_key(records: LabelledImages, cfg: PreprocessConfig) -> str:
    h = hashlib.sha256(json.dumps({"version": VERSION, **cfg.decode_key()}, sort_keys=True).encode())
    stats: dict[str, str] = {}
    for image_id, path in zip(records.image_ids, records.paths):
        p = os.path.abspath(path)
        if p not in stats:
            try:
                st = os.stat(p)
                stats[p] = f"{st.st_size}\t{st.st_mtime_ns}"
            except FileNotFoundError:
                raise DataError(f"{p}: missing image") from None
        h.update(f"{image_id}\t{p}\t{stats[p]}\n".encode())
    return h.hexdigest()


def cache_path(records: LabelledImages, cfg: PreprocessConfig, cache_dir: Path) -> Path:
    h, w = cfg.hw
    return Path(cache_dir) / f"{records.dataset}-{records.split}-{h}x{w}-{cache_key(records, cfg)[:20]}.npy"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # no flock (Windows): concurrent builders each build; os.replace keeps the file whole
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def build_cache(
    records: LabelledImages, cfg: PreprocessConfig, cache_dir: Path, workers: int | None = None
) -> Path:
    """Path of the cache of `records` at `cfg`, built now if absent. Raises DataError listing every bad image."""
    final = cache_path(records, cfg, cache_dir)
    if final.is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with _locked(final.with_name(f".{final.name}.lock")):
        if final.is_file():  # another process built it while we waited
            return final
        with atomic_path(final) as tmp:
            # Grey content (the usual case) is stored once; a colour image forces a 3-channel rebuild.
            if not _fill(records, cfg, tmp, 1, workers):
                _fill(records, cfg, tmp, 3, workers)
    return final


def _fill(records: LabelledImages, cfg: PreprocessConfig, tmp: Path, channels: int, workers: int | None) -> bool:
    """Decode everything into `tmp`; False if a colour image met a 1-channel file."""
    shape = (len(records), *cfg.hw, channels)
    np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape).flush()
    starts = range(0, len(records), CHUNK)
    if records.pixels is not None:  # in-memory arrays: resizing is cheap, no need to ship them to workers
        results = (_decode_chunk(tmp, range(s, min(s + CHUNK, len(records))), records.pixels[s:s + CHUNK], cfg)
                   for s in starts)
        results = list(tqdm(results, total=len(starts), desc=f"cache {records.split}", unit="chunk", disable=None))
    else:
        workers = workers if workers is not None else min(8, os.cpu_count() or 1)
        jobs = [(tmp, range(s, min(s + CHUNK, len(records))), records.paths[s:s + CHUNK], cfg) for s in starts]
        if workers <= 1:
            results = [_decode_chunk(*job) for job in tqdm(jobs, desc=f"cache {records.split}", unit="chunk", disable=None)]
        else:
            with ProcessPoolExecutor(workers) as pool:
                results = list(tqdm(pool.map(_decode_chunk, *zip(*jobs)), total=len(jobs),
                                    desc=f"cache {records.split}", unit="chunk", disable=None))
    errors = [e for chunk_errors, _ in results for e in chunk_errors]
    if errors:
        raise DataError(errors)
    return not any(colour for _, colour in results)


def _decode_chunk(tmp: Path, rows: range, sources, cfg: PreprocessConfig) -> tuple[list[str], bool]:
    """Decode one chunk straight into the memory-mapped file; returns (problems, met a colour image)."""
    out = np.load(tmp, mmap_mode="r+")
    errors, colour = [], False
    for row, source in zip(rows, sources):
        try:
            a = decode(source, cfg)
        except DataError as e:
            errors.extend(e.problems)
            continue
        if a.shape[2] > out.shape[3]:
            colour = True
            break
        out[row] = a if a.shape[2] == out.shape[3] else np.repeat(a, out.shape[3], axis=2)
    out.flush()
    return errors, colour

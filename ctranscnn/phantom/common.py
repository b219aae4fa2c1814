"""Shared machinery of the phantom generators: seeded streams, coordinate grids, soft shapes, the pool.

Every random draw comes from `stream(seed, kind, *keys)`, a generator keyed by what it is for (an
image index, a patient, a finding), never from a shared sequential generator. That is what makes the
output byte-identical whatever the number of workers, and lets a test re-render an image with one
finding removed while everything else (pose, noise, other findings) stays the same.
"""
from __future__ import annotations

import io
import multiprocessing as mp
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from PIL import Image

# stream kinds; fixed numbers so adding a kind never reshuffles the others
PLAN, PATIENT, IMAGE, FINDING_PATIENT, FINDING_IMAGE, NOISE, DEVICE, ACQUISITION, VIEW = range(9)


def stream(seed: int, kind: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), kind, *map(int, keys)]))


def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-1, 1]: x left to right, y top to bottom (float32, size x size)."""
    t = ((np.arange(size, dtype=np.float32) + 0.5) / size) * 2 - 1
    return np.meshgrid(t, t)


def sigmoid_edge(inside: np.ndarray, width: float) -> np.ndarray:
    """Soft indicator of `inside > 0` with an edge `width` (in the units of `inside`) wide."""
    return 1.0 / (1.0 + np.exp(-np.clip(inside / max(width, 1e-6), -30, 30)))


def superellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, ax: float, ay: float,
                 power: float = 2.0) -> np.ndarray:
    """Level function: < 1 inside the superellipse centred (cx, cy) with half axes (ax, ay)."""
    return np.abs((x - cx) / ax) ** power + np.abs((y - cy) / ay) ** power


def smooth_noise(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, freq: float,
                 waves: int = 16) -> np.ndarray:
    """Band-limited noise (sum of random plane waves around `freq` cycles per unit), ~unit variance."""
    angles = rng.uniform(0, np.pi, waves)
    freqs = freq * rng.uniform(0.7, 1.4, waves)
    phases = rng.uniform(0, 2 * np.pi, waves)
    out = np.zeros_like(x)
    for a, f, p in zip(angles, freqs, phases):
        out += np.cos(2 * np.pi * f * (x * np.cos(a) + y * np.sin(a)) + p)
    return out * np.float32(np.sqrt(2.0 / waves))


def spline(points: Sequence[tuple[float, float]], per_segment: int = 12) -> np.ndarray:
    """Catmull-Rom curve through the control points, as an (M, 2) array."""
    p = np.asarray(points, np.float64)
    p = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    t = np.linspace(0, 1, per_segment, endpoint=False)[:, None]
    out = []
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        out.append(0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                          + (3 * p1 - p0 - 3 * p2 + p3) * t**3))
    out.append(p[-2][None])
    return np.vstack(out)


def polyline_distance(x: np.ndarray, y: np.ndarray, curve: np.ndarray) -> np.ndarray:
    """Distance of every grid point to a polyline (running minimum over its segments)."""
    best = np.full(x.shape, np.inf, np.float32)
    for (ax, ay), (bx, by) in zip(curve[:-1], curve[1:]):
        dx, dy = bx - ax, by - ay
        t = np.clip(((x - ax) * dx + (y - ay) * dy) / max(dx * dx + dy * dy, 1e-12), 0, 1)
        np.minimum(best, np.hypot(x - ax - t * dx, y - ay - t * dy), out=best)
    return best


def mask_box(field: np.ndarray, rel: float = 0.1) -> tuple[int, int, int, int] | None:
    """Pixel box (x, y, w, h) of where |field| exceeds `rel` of its maximum; None if empty."""
    mag = np.abs(field)
    peak = float(mag.max()) if mag.size else 0.0
    if peak <= 1e-6:
        return None
    ys, xs = np.nonzero(mag > rel * peak)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    return int(x0), int(y0), int(x1 - x0), int(y1 - y0)


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def encode_image(pixels: np.ndarray, suffix: str) -> bytes:
    """PNG (lossless) or JPEG (quality 95) bytes; PIL's encoders are deterministic."""
    buf = io.BytesIO()
    if suffix == ".png":
        Image.fromarray(pixels).save(buf, format="PNG", compress_level=6)
    elif suffix in (".jpg", ".jpeg"):
        Image.fromarray(pixels).save(buf, format="JPEG", quality=95, subsampling=0)
    else:
        raise ValueError(f"unsupported image suffix {suffix!r}")
    return buf.getvalue()


def run_pool(fn: Callable[[Any], Any], jobs: Iterable[Any], workers: int, chunksize: int = 16) -> Iterator[Any]:
    """Ordered map over `jobs` in `workers` processes (in-process for workers <= 1)."""
    if workers <= 1:
        yield from map(fn, jobs)
        return
    # fork is cheap and inherits the loaded tables; spawn elsewhere
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    with mp.get_context(method).Pool(workers) as pool:
        yield from pool.imap(fn, jobs, chunksize=chunksize)

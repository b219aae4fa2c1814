"""tongue phantom: a TCMTD stand-in (tongue photographs labelled with TCM constitutions).

Each of the 9 constitutions named in the paper raises the chance of visible traits (body colour,
coating colour and thickness, cracks, tooth marks, swelling, sublingual veins, red points, red
edges); traits also appear by chance, so labels are learnable but not trivially separable. Written
in the authors' list format: `images/<id>.png`, `tongue_{train,val,test}.txt` with
`path<TAB>0,1,...` lines and a class file, neither with a trailing newline.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ctranscnn.io import atomic_write_bytes, atomic_write_text
from ctranscnn.phantom.common import (IMAGE, NOISE, PLAN, encode_image, grid, polyline_distance, run_pool,
                                      sigmoid_edge, smooth_noise, spline, stream)

CLASSES = ["Qixu", "Qiyu", "Shire", "Tanshi", "Tebing", "Xueyu", "Yinxu", "Pinghe", "Yangxu"]
PINGHE = CLASSES.index("Pinghe")
BALANCED_PROB = 0.18  # Pinghe (balanced constitution) excludes the others
WEIGHTS = np.array([0.2, 0.1, 0.13, 0.15, 0.08, 0.1, 0.12, 0.0, 0.12])  # among unbalanced types
SPLITS = {"train": 0.7, "val": 0.2, "test": 0.1}  # the authors' 70/20/10 (as for chest11)

# body colours (RGB 0-1) each constitution pulls towards; mixed constitutions blend them
BODY = {"Pinghe": (0.86, 0.45, 0.47), "Qixu": (0.9, 0.62, 0.62), "Yangxu": (0.93, 0.7, 0.7),
        "Yinxu": (0.85, 0.25, 0.28), "Shire": (0.83, 0.28, 0.27), "Xueyu": (0.6, 0.33, 0.45),
        "Qiyu": (0.75, 0.4, 0.45), "Tanshi": (0.88, 0.52, 0.55), "Tebing": (0.84, 0.4, 0.44)}
# P(trait | constitution); absent entries use the background rate
TRAITS = {
    "tooth_marks": {"Qixu": 0.7, "Yangxu": 0.5, "Tanshi": 0.45},
    "swollen": {"Qixu": 0.4, "Yangxu": 0.7, "Tanshi": 0.7},
    "cracks": {"Yinxu": 0.7, "Qixu": 0.2},
    "yellow_coat": {"Shire": 0.85},
    "thick_coat": {"Shire": 0.7, "Tanshi": 0.8, "Yangxu": 0.3},
    "peeled": {"Yinxu": 0.6, "Tebing": 0.35},
    "veins": {"Xueyu": 0.7, "Qiyu": 0.25},
    "spots": {"Xueyu": 0.5},
    "red_points": {"Tebing": 0.7, "Shire": 0.2},
    "red_edges": {"Qiyu": 0.6, "Yinxu": 0.2},
}
BACKGROUND = 0.07


def plan_tongue(n: int, seed: int = 0) -> np.ndarray:
    """n x 9 multi-hot constitutions."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = stream(seed, PLAN)
    labels = np.zeros((n, len(CLASSES)), np.uint8)
    balanced = rng.random(n) < BALANCED_PROB
    labels[balanced, PINGHE] = 1
    k = rng.choice([1, 2, 3], size=n, p=[0.55, 0.35, 0.1])
    for i in np.flatnonzero(~balanced):
        labels[i, rng.choice(len(CLASSES), size=k[i], replace=False, p=WEIGHTS / WEIGHTS.sum())] = 1
    return labels


def render_tongue(seed: int, index: int, labels: np.ndarray, size: int) -> np.ndarray:
    """One RGB photograph (size x size x 3, uint8)."""
    r = stream(seed, IMAGE, index)
    names = [c for c, on in zip(CLASSES, labels) if on]
    trait = {t: r.random() < max([BACKGROUND] + [p.get(c, 0) for c in names]) for t, p in TRAITS.items()}
    if "Pinghe" in names:
        trait = {t: r.random() < BACKGROUND / 3 for t in TRAITS}
    x, y = grid(size)
    x = x - r.normal(0, 0.04)
    y = y - r.normal(0, 0.04)
    skin = np.array([0.85, 0.66, 0.55]) * r.uniform(0.75, 1.05) + r.normal(0, 0.03, 3)
    img = np.broadcast_to(skin, (size, size, 3)).astype(np.float32) * (0.9 + 0.1 * (1 - y[..., None] ** 2))
    # mouth: dark opening, lips, upper teeth
    mouth = sigmoid_edge(1 - ((x / 0.55) ** 2 + ((y + 0.45) / 0.28) ** 2), 0.05)[..., None]
    lips = sigmoid_edge(1 - ((x / 0.66) ** 2 + ((y + 0.45) / 0.36) ** 2), 0.05)[..., None]
    img = img * (1 - lips) + lips * np.array([0.7, 0.3, 0.32]) * r.uniform(0.85, 1.05)
    img = img * (1 - mouth) + mouth * np.array([0.18, 0.06, 0.07])
    teeth = (mouth[..., 0] * sigmoid_edge(-0.6 - y, 0.02) * (0.85 + 0.15 * np.cos(x * 40)))[..., None]
    img = img * (1 - teeth) + teeth * np.array([0.93, 0.9, 0.84])
    # tongue body: wider at the root, rounded tip; swelling widens it, tooth marks scallop its edge
    width = r.uniform(0.36, 0.42) * (1.18 if trait["swollen"] else 1.0)
    length = r.uniform(0.95, 1.1)
    t = np.clip((y + 0.5) / length, 0, 1)  # 0 at the root, 1 at the tip
    half = width * (1 - 0.2 * t)
    if trait["tooth_marks"]:
        half = half * (1 - 0.07 * np.clip(np.cos(y * 38), 0, None) * sigmoid_edge(0.75 - t, 0.1))
    level = (np.abs(x) / half) ** 2.4 + np.abs((y + 0.5 - length / 2) / (length / 2)) ** 2.4
    tongue = sigmoid_edge(1 - level, 0.04) * sigmoid_edge(y + 0.55, 0.02)
    colour = np.mean([BODY[c] for c in names], axis=0) + r.normal(0, 0.035, 3)
    shade = 0.75 + 0.25 * np.clip(1 - (x / (width + 1e-6)) ** 2, 0, 1)
    papillae = 1 + 0.05 * smooth_noise(r, x, y, 14.0, 16)
    body = colour * (shade * papillae)[..., None]
    if trait["red_edges"]:
        edge = sigmoid_edge(np.abs(x) - 0.7 * half, 0.03) + sigmoid_edge(t - 0.85, 0.05)
        body = body * (1 - 0.5 * edge[..., None]) + 0.5 * edge[..., None] * np.array([0.85, 0.18, 0.2])
    # coating: over the centre and root; thickness sets its opacity
    coat_colour = np.array([0.86, 0.78, 0.42]) if trait["yellow_coat"] else np.array([0.93, 0.92, 0.88])
    coat = (0.7 if trait["thick_coat"] else 0.28) * r.uniform(0.8, 1.1)
    coat_map = coat * sigmoid_edge(0.75 * half - np.abs(x), 0.06) * sigmoid_edge(0.7 - t, 0.15)
    coat_map = coat_map * np.clip(0.75 + 0.35 * smooth_noise(r, x, y, 8.0, 12), 0, 1)
    if trait["peeled"]:
        coat_map = coat_map * sigmoid_edge(smooth_noise(r, x, y, 2.5, 8) - 0.2, 0.2)
    body = body * (1 - coat_map[..., None]) + coat_map[..., None] * coat_colour
    if trait["cracks"]:
        for _ in range(int(r.integers(2, 5))):
            x0, y0 = r.uniform(-0.08, 0.08), r.uniform(-0.35, 0.2)
            pts = [(x0, y0), (x0 + r.normal(0, 0.08), y0 + 0.12), (x0 + r.normal(0, 0.12), y0 + r.uniform(0.18, 0.3))]
            crack = sigmoid_edge(0.008 - polyline_distance(x, y, spline(pts, 6)), 0.004)
            body = body * (1 - 0.6 * crack[..., None])
    if trait["veins"]:
        for s in (-1, 1):
            vein = sigmoid_edge(0.016 - polyline_distance(x, y, spline([(s * 0.1, -0.5), (s * 0.12, -0.2), (s * 0.08, 0.05)], 6)), 0.01)
            body = body * (1 - 0.55 * vein[..., None]) + 0.55 * vein[..., None] * np.array([0.35, 0.2, 0.45])
    for flag, count, rad, col in (("spots", (3, 8), 0.03, (0.4, 0.2, 0.35)), ("red_points", (12, 30), 0.012, (0.85, 0.1, 0.15))):
        if trait[flag]:
            for _ in range(int(r.integers(*count))):
                px, py = r.uniform(-0.8, 0.8) * width, r.uniform(-0.3, 0.45)
                dot = sigmoid_edge(rad - np.hypot(x - px, y - py), 0.006)[..., None]
                body = body * (1 - 0.8 * dot) + 0.8 * dot * np.array(col)
    # specular highlight of the moist surface
    glint = 0.25 * np.exp(-(((x - 0.1) / 0.12) ** 2 + ((y - 0.05) / 0.05) ** 2))[..., None]
    body = body + glint
    img = img * (1 - tongue[..., None]) + tongue[..., None] * body
    img = img * r.uniform(0.85, 1.1) * (1 + r.normal(0, 0.04, 3))  # exposure and white balance
    img = img + stream(seed, NOISE, index).normal(0, 0.012, img.shape)
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)


def _render_job(job) -> None:
    out, seed, index, labels, size, rel = job
    atomic_write_bytes(Path(out) / rel, encode_image(render_tongue(seed, index, labels, size), ".png"))


def generate_tongue(out: Path, n: int, size: int = 128, seed: int = 0, workers: int = 2,
                    progress: bool = False) -> dict[str, list[int]]:
    """Write images and the authors' list files under `out`; returns image indices per split."""
    from tqdm import tqdm

    out = Path(out)
    labels = plan_tongue(n, seed)
    rels = [f"images/tongue_{i:06d}.png" for i in range(n)]
    jobs = [(str(out), seed, i, labels[i], size, rels[i]) for i in range(n)]
    for _ in tqdm(run_pool(_render_job, jobs, workers), total=n, disable=not progress, desc="tongue"):
        pass
    order = stream(seed, PLAN, 1).permutation(n)
    cut = np.cumsum([round(n * f) for f in SPLITS.values()])[:-1]
    splits = {name: sorted(part.tolist()) for name, part in zip(SPLITS, np.split(order, cut))}
    for name, idx in splits.items():
        lines = [f"{rels[i]}\t{','.join(map(str, labels[i]))}" for i in idx]
        atomic_write_text(out / f"tongue_{name}.txt", "\n".join(lines))  # authors' files: no trailing newline
    atomic_write_text(out / "multi_label_classes.txt", "\n".join(CLASSES))
    return splits

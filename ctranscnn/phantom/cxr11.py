"""cxr11 phantom: a RANZCR CLiP stand-in (catheter and tube positions), written in the RANZCR layout.

The thorax of the cxr14 phantom carries radiopaque devices whose tip position defines the label:
ETT tip vs carina; NGT tip vs the gastro-oesophageal junction (or below the film: incompletely
imaged); CVC and Swan-Ganz tip vs the superior vena cava / cavo-atrial junction / pulmonary artery.
Class frequencies are those of the whole RANZCR training set (spec section 5.2).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from ctranscnn.io import atomic_write_bytes, write_csv
from ctranscnn.phantom.common import (DEVICE, IMAGE, NOISE, PATIENT, PLAN, encode_image, polyline_distance,
                                      run_pool, sigmoid_edge, spline, stream)
from ctranscnn.phantom.thorax import Thorax, sample_anatomy, sample_pose

CLASSES = ["ETT - Abnormal", "ETT - Borderline", "ETT - Normal", "NGT - Abnormal", "NGT - Borderline",
           "NGT - Incompletely Imaged", "NGT - Normal", "CVC - Abnormal", "CVC - Borderline", "CVC - Normal",
           "Swan Ganz Catheter Present"]
# image counts of each class in the 30,083 RANZCR training images (spec 5.2)
COUNTS = np.array([79, 1138, 7240, 279, 529, 2748, 4797, 3195, 8460, 21324, 830])
TOTAL = 30083
GROUPS = {"ETT": [0, 1, 2], "NGT": [3, 4, 5, 6]}  # one tube of each kind: mutually exclusive states
CVC = [7, 8, 9]  # several catheters may coexist, one state each
SWAN = 10
REPEAT_PROB = 0.5  # a follow-up film of an ICU patient often shows the same devices (assumed, not measured)


def _calibrated_probs() -> np.ndarray:
    """Per-class draw probabilities such that, after rejecting device-free films (RANZCR has 24 in
    30,083), the marginal frequencies equal COUNTS / TOTAL. Fixed point of p = target * (1 - P(empty))."""
    target = COUNTS / TOTAL
    p = target.copy()
    for _ in range(200):
        empty = np.prod([1 - p[g].sum() for g in GROUPS.values()]) * np.prod(1 - p[CVC]) * (1 - p[SWAN])
        p = target * (1 - empty)
    return p


def plan_cxr11(n: int, seed: int = 0, patients: int | None = None) -> pd.DataFrame:
    """Labels (n x 11 multi-hot) and patient of every image, without drawing any."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    patients = patients or max(1, round(n / 9.2))  # RANZCR: 30,083 images of 3,255 patients
    if not 1 <= patients <= n:
        raise ValueError(f"--patients must be in [1, n={n}], got {patients}")
    rng = stream(seed, PLAN)
    p = _calibrated_probs()
    weights = rng.gamma(1.0, size=patients)
    counts = 1 + rng.multinomial(n - patients, weights / weights.sum())
    patient = np.repeat(np.arange(patients), counts)
    followup = np.concatenate([np.arange(k) for k in counts])
    fresh = np.zeros((n, len(CLASSES)), np.uint8)
    todo = np.arange(n)
    while len(todo):  # rejection: every film shows at least one device
        draw = np.zeros((len(todo), len(CLASSES)), np.uint8)
        for group in GROUPS.values():
            probs = np.append(p[group], 1 - p[group].sum())
            pick = rng.choice(len(probs), size=len(todo), p=probs)
            for j, c in enumerate(group):
                draw[:, c] = pick == j
        draw[:, CVC + [SWAN]] = rng.random((len(todo), len(CVC) + 1)) < p[CVC + [SWAN]]
        ok = draw.any(1)
        fresh[todo[ok]] = draw[ok]
        todo = todo[~ok]
    copies = (followup > 0) & (rng.random(n) < REPEAT_PROB)
    source = np.maximum.accumulate(np.where(copies, 0, np.arange(n)))
    uid_root = "1.2.826.0.1.3680043.8.498."
    return pd.DataFrame({
        "index": np.arange(n), "patient": patient, "source": source,
        "uid": [uid_root + str(int(hashlib.sha256(f"{seed}/{i}".encode()).hexdigest(), 16) % 10**38) for i in range(n)],
        "patient_id": [hashlib.sha256(f"{seed}/patient/{q}".encode()).hexdigest()[:9] for q in patient],
        **{c: fresh[source, j] for j, c in enumerate(CLASSES)},
    })


def _tube(th: Thorax, points, radius: float, wall: float = 0.5) -> np.ndarray:
    """A radiopaque tube: bright walls (and a brighter stripe) along a smooth curve."""
    curve = spline(points, 10)
    d = polyline_distance(th.u, th.v, curve)
    px = th.px
    body = sigmoid_edge(radius - d, 0.7 * px)
    stripe = sigmoid_edge(0.35 * radius - d, 0.5 * px) if radius > 1.5 * px else body
    return wall * 0.35 * body + 0.3 * stripe


def _ett(th, r, state):
    cx, cy = th.carina()
    top = (0.0, -1.2)
    if state == "Normal":
        tip = (cx + r.normal(0, 0.01), cy - r.uniform(0.1, 0.18))
    elif state == "Borderline":
        tip = (cx, cy - (r.uniform(0.02, 0.05) if r.random() < 0.5 else r.uniform(0.24, 0.3)))
    else:  # Abnormal: in the right main bronchus, or far too high
        tip = (cx - 0.09, cy + r.uniform(0.08, 0.14)) if r.random() < 0.6 else (cx, cy - r.uniform(0.4, 0.5))
    mid = (0.5 * (top[0] + tip[0]) + r.normal(0, 0.01), 0.5 * (top[1] + tip[1]))
    return _tube(th, [top, mid, tip], 0.02)


def _ngt(th, r, state):
    gej = (0.14, th.diaphragm(1) - 0.06)  # gastro-oesophageal junction
    path = [(0.02, -1.2), (0.03, -0.5), (0.05, 0.0), gej]
    if state == "Normal":
        path += [(0.26, gej[1] + 0.12), (0.32 + r.uniform(0, 0.08), gej[1] + r.uniform(0.2, 0.3))]
    elif state == "Borderline":
        path[-1] = (0.12, gej[1] + r.uniform(-0.06, 0.03))
    elif state == "Abnormal":  # into the right lower lobe bronchus, or coiled in the oesophagus
        path = ([(0.02, -1.2), (0.0, -0.45), (-0.12, -0.15), (-0.25, 0.1 + r.uniform(0, 0.15))] if r.random() < 0.6
                else [(0.02, -1.2), (0.03, -0.5), (0.08, -0.3), (-0.04, -0.25), (0.05, -0.4), (0.04, -0.15)])
    else:  # Incompletely Imaged: runs off the bottom of the film
        path += [(0.22, gej[1] + 0.2), (0.2 + r.uniform(-0.05, 0.1), 1.3)]
    return _tube(th, path, 0.012)


def _cvc(th, r, state):
    side = -1 if r.random() < 0.7 else 1  # right-sided lines are the majority
    svc_x = -0.07
    entry = [(side * 0.22, -1.15), (side * 0.16, -0.75)] if r.random() < 0.6 else \
            [(side * 0.6, -0.7), (side * 0.35, -0.68)]  # internal jugular or subclavian route
    path = entry + [(svc_x * 0.8, -0.5)]
    if state == "Normal":
        path += [(svc_x, -0.2), (svc_x, r.uniform(-0.05, 0.08))]
    elif state == "Borderline":
        path += [(svc_x, -0.32)] if r.random() < 0.6 else [(svc_x, -0.1), (svc_x + 0.04, r.uniform(0.18, 0.26))]
    else:  # Abnormal: up the opposite jugular, out the opposite subclavian, or deep in the ventricle
        u = r.random()
        path = (path + [(-side * 0.15, -0.8), (-side * 0.2, -1.1)] if u < 0.35 else
                path + [(-side * 0.35, -0.66), (-side * 0.55, -0.7)] if u < 0.65 else
                path + [(svc_x, 0.1), (0.12, 0.32)])
    return _tube(th, path, 0.007, wall=0.8)


def _swan_ganz(th, r):
    pa = (-0.2 if r.random() < 0.7 else 0.22, -0.08 + r.normal(0, 0.02))
    path = [(-0.22, -1.15), (-0.15, -0.75), (-0.07, -0.4), (-0.04, 0.12), (0.12, 0.3), (0.14, 0.05), (0.05, -0.12), pa]
    return _tube(th, path, 0.006, wall=0.8)


def render_cxr11(seed: int, index: int, patient: int, source: int, labels: np.ndarray, size: int) -> np.ndarray:
    """One film with its devices. `source` is the film whose devices this one repeats (itself if fresh)."""
    th = Thorax(sample_anatomy(stream(seed, PATIENT, patient)), sample_pose(stream(seed, IMAGE, index)), size)
    A = th.A.copy()
    for j, on in enumerate(labels):
        if not on:
            continue
        r = stream(seed, DEVICE, source, j)
        device, _, state = CLASSES[j].partition(" - ")
        state = state.split()[0] if state else ""
        if device == "ETT":
            A += _ett(th, r, state)
        elif device == "NGT":
            A += _ngt(th, r, state)
        elif device == "CVC":
            A += _cvc(th, r, state)
        else:
            A += _swan_ganz(th, r)
    return th.display(A, stream(seed, NOISE, index))


def _render_job(job) -> None:
    out, seed, index, patient, source, labels, size, uid = job
    pixels = render_cxr11(seed, index, patient, source, labels, size)
    atomic_write_bytes(Path(out) / "train" / f"{uid}.jpg", encode_image(pixels, ".jpg"))


def generate_cxr11(out: Path, n: int, size: int = 128, seed: int = 0, patients: int | None = None,
                   workers: int = 2, progress: bool = False) -> pd.DataFrame:
    """Write `train.csv` and `train/<StudyInstanceUID>.jpg` (RANZCR layout) under `out`."""
    from tqdm import tqdm

    out = Path(out)
    plan = plan_cxr11(n, seed, patients)
    labels = plan[CLASSES].to_numpy()
    jobs = [(str(out), seed, int(r.index), int(r.patient), int(r.source), labels[i], size, r.uid)
            for i, r in enumerate(plan.itertuples())]
    for _ in tqdm(run_pool(_render_job, jobs, workers), total=n, disable=not progress, desc="cxr11"):
        pass
    table = plan.rename(columns={"uid": "StudyInstanceUID", "patient_id": "PatientID"})
    write_csv(table[["StudyInstanceUID", *CLASSES, "PatientID"]], out / "train.csv")
    return plan

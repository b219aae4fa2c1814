"""The 14 NIH findings, each a radiological signature drawn on a `Thorax`.

A finding is a function `(thorax, patient_rng, image_rng, strength) -> Effect`. Its geometry (side,
place, size) comes from the patient stream, so a patient's nodule sits in the same place on every
follow-up; the image stream only jitters it. An effect is an additive attenuation field, or anatomy
modifiers (cardiomegaly, emphysema) whose field is the difference they make. `DEFAULT_STRENGTH`
holds the difficulty knobs: a multiplier of each finding's contrast.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ctranscnn.phantom.common import sigmoid_edge, smooth_noise, superellipse
from ctranscnn.phantom.thorax import SIDES, Modifiers, Thorax

# 1.0 = the designed contrast; lower is harder. Nodules are small and faint by design (the hard
# class), cardiomegaly and emphysema are global shape changes (easy at any size).
DEFAULT_STRENGTH: dict[str, float] = {
    "Atelectasis": 1.0, "Cardiomegaly": 1.0, "Consolidation": 1.0, "Edema": 1.0, "Effusion": 1.0,
    "Emphysema": 1.0, "Fibrosis": 1.0, "Hernia": 1.0, "Infiltration": 1.0, "Mass": 1.0, "Nodule": 1.0,
    "Pleural_Thickening": 1.0, "Pneumonia": 1.0, "Pneumothorax": 1.0,
}


@dataclass
class Effect:
    field: np.ndarray | None = None
    mods: dict[str, float] | None = None  # Modifiers fields, combined multiplicatively/additively


def _side(rp: np.random.Generator) -> int:
    return int(rp.choice(SIDES))


def _lung_point(th: Thorax, rp, ri, side: int, v_lo: float, v_hi: float, u_lo=-0.6, u_hi=0.7):
    """A point inside a lung: v in [v_lo, v_hi] of the lung's height (0 apex, 1 base), u from
    medial (-1) to lateral (+1); jittered per image."""
    cx, cy = th.lung_center(side)
    ax, ay = th.lung_axes()
    fu, fv = rp.uniform(u_lo, u_hi), rp.uniform(v_lo, v_hi)
    top, base = cy - ay * 0.9, th.diaphragm(side) - 0.06
    u = cx + side * fu * ax * 0.75 + ri.normal(0, 0.012)
    v = top + fv * (base - top) + ri.normal(0, 0.012)
    return u, v


def _lung_level(th: Thorax, side: int) -> np.ndarray:
    cx, cy = th.lung_center(side)
    ax, ay = th.lung_axes()
    return superellipse(th.u, th.v, cx, cy, ax, ay, 2.6)


def _sector(th: Thorax, side: int, centre: float, half: float) -> np.ndarray:
    """Soft angular window around the lung centre; angle 0 = lateral, -pi/2 = apical."""
    cx, cy = th.lung_center(side)
    ang = np.arctan2(th.v - cy, (th.u - cx) * side)
    return sigmoid_edge(half - np.abs(ang - centre), 0.12)


def _blob(th: Thorax, u0, v0, r, rp, lobulation=0.0, edge=1.5, aspect=1.0, angle=0.0) -> np.ndarray:
    du, dv = th.u - u0, th.v - v0
    c, s = np.cos(angle), np.sin(angle)
    a, b = c * du + s * dv, (-s * du + c * dv) * aspect
    rad = np.hypot(a, b)
    if lobulation:
        theta = np.arctan2(b, a)
        k, phase = int(rp.integers(3, 6)), rp.uniform(0, 2 * np.pi)
        r = r * (1 + lobulation * np.cos(k * theta + phase))
    return sigmoid_edge(r - rad, edge * th.px)


def atelectasis(th, rp, ri, k):
    side = _side(rp)
    u0, v0 = _lung_point(th, rp, ri, side, 0.55, 0.85)
    plate = rp.random() < 0.6  # plate-like (discoid) line, else a wedge of collapse
    length, thick = (rp.uniform(0.1, 0.18), rp.uniform(0.012, 0.025)) if plate else (rp.uniform(0.08, 0.14), 0.05)
    shape = _blob(th, u0, v0, length, rp, edge=2.0, aspect=length / thick, angle=rp.uniform(-0.35, 0.35))
    return Effect(0.3 * k * shape * th.lungs[side])


def cardiomegaly(th, rp, ri, k):
    return Effect(mods={"heart_scale": 1 + k * (rp.uniform(0.24, 0.4) + ri.normal(0, 0.02))})


def consolidation(th, rp, ri, k):
    side = _side(rp)
    u0, v0 = _lung_point(th, rp, ri, side, 0.35, 0.85)
    r = rp.uniform(0.1, 0.17)
    shape = _blob(th, u0, v0, r, rp, lobulation=0.25, edge=3.0)
    bronchi = np.exp(-(smooth_noise(rp, th.u, th.v, 6.0, 8) / 0.25) ** 2)  # air bronchograms
    return Effect(k * (0.34 - 0.1 * bronchi) * shape * th.lungs[side])


def edema(th, rp, ri, k):
    field = np.zeros_like(th.u)
    spread = rp.uniform(0.16, 0.24)
    patchy = 0.75 + 0.25 * smooth_noise(ri, th.u, th.v, 3.0, 8)
    for side in SIDES:
        hx, hy = th.hilum(side)
        haze = np.exp(-(((th.u - hx) / spread) ** 2 + ((th.v - hy) / (1.4 * spread)) ** 2))
        field += 0.24 * haze * th.lungs[side]
    return Effect(k * field * patchy)


def effusion(th, rp, ri, k):
    sides = SIDES if rp.random() < 0.3 else (_side(rp),)
    field = np.zeros_like(th.u)
    h = rp.uniform(0.04, 0.26) * (1 + ri.normal(0, 0.1))
    for side in sides:
        cx, _ = th.lung_center(side)
        ax, _ = th.lung_axes()
        lateral = np.clip((th.u - cx) * side / ax, -1, 1)
        level = th.diaphragm(side) - h - 0.5 * h * (lateral + 1)  # meniscus climbs laterally
        field += 0.42 * sigmoid_edge(th.v - level, 0.02) * th.lungs[side]
    return Effect(k * field)


def emphysema(th, rp, ri, k):
    return Effect(mods={"lung_scale": 1 + 0.1 * k, "diaphragm_shift": 0.08 * k, "dome_scale": 1 - 0.65 * k,
                        "lucency": 0.08 * k, "marking_gain": 1 - 0.6 * k, "heart_scale": 1 - 0.1 * k})


def fibrosis(th, rp, ri, k):
    net = np.maximum(np.exp(-(smooth_noise(rp, th.u, th.v, 9.0, 16) / 0.3) ** 2),
                     np.exp(-(smooth_noise(rp, th.u, th.v, 9.0, 16) / 0.3) ** 2))
    field = np.zeros_like(th.u)
    start = rp.uniform(-0.1, 0.15)
    for side in SIDES:
        cx, cy = th.lung_center(side)
        ax, _ = th.lung_axes()
        peripheral = sigmoid_edge((th.u - cx) * side / ax + 0.2, 0.2)
        field += th.lungs[side] * sigmoid_edge(th.v - cy - start, 0.1) * peripheral
    return Effect(k * 0.17 * net * field)


def hernia(th, rp, ri, k):
    a = th.anatomy
    u0 = a.heart_cx + rp.uniform(-0.06, 0.06)
    v0 = th.diaphragm(1) - a.dome_h * 0.9 + rp.uniform(-0.04, 0.02)
    r = rp.uniform(0.07, 0.11)
    disk = _blob(th, u0, v0, r, rp, edge=1.5)
    gas = sigmoid_edge(v0 - 0.1 * r - th.v, th.px)  # air-fluid level
    return Effect(k * disk * (0.2 - 0.38 * gas))


def infiltration(th, rp, ri, k):
    sides = SIDES if rp.random() < 0.35 else (_side(rp),)
    field = np.zeros_like(th.u)
    patches = np.clip(smooth_noise(rp, th.u, th.v, 5.0, 12) + 0.3, 0, None)
    for side in sides:
        u0, v0 = _lung_point(th, rp, ri, side, 0.2, 0.8)
        region = _blob(th, u0, v0, rp.uniform(0.14, 0.26), rp, edge=12.0)
        field += 0.16 * region * patches * th.lungs[side]
    return Effect(k * field)


def mass(th, rp, ri, k):
    side = _side(rp)
    u0, v0 = _lung_point(th, rp, ri, side, 0.15, 0.8)
    r = rp.uniform(0.055, 0.1) * (1 + ri.normal(0, 0.05))
    return Effect(k * 0.34 * _blob(th, u0, v0, r, rp, lobulation=0.15, edge=2.0) * (th.lungs[-1] + th.lungs[1]))


def nodule(th, rp, ri, k):
    field = np.zeros_like(th.u)
    for _ in range(1 if rp.random() < 0.8 else int(rp.integers(2, 4))):
        side = _side(rp)
        u0, v0 = _lung_point(th, rp, ri, side, 0.1, 0.85)
        r = rp.uniform(0.018, 0.035)
        field += _blob(th, u0, v0, r, rp, edge=1.0) * th.lungs[side]
    return Effect(k * 0.26 * field)


def pleural_thickening(th, rp, ri, k):
    side = _side(rp)
    width = rp.uniform(0.12, 0.22)
    centre = -1.2 if rp.random() < 0.5 else rp.uniform(-0.3, 0.4)  # apical cap or lateral
    rim = sigmoid_edge(_lung_level(th, side) - (1 - width), 0.03) * th.lungs[side]
    return Effect(k * 0.3 * rim * _sector(th, side, centre, rp.uniform(0.4, 0.7)))


def pneumonia(th, rp, ri, k):
    side = _side(rp)
    u0, v0 = _lung_point(th, rp, ri, side, 0.45, 0.9)
    region = _blob(th, u0, v0, rp.uniform(0.12, 0.2), rp, lobulation=0.3, edge=6.0)
    patchy = 0.8 + 0.2 * smooth_noise(ri, th.u, th.v, 5.0, 8)
    return Effect(k * 0.3 * region * patchy * th.lungs[side])


def pneumothorax(th, rp, ri, k):
    side = _side(rp)
    depth = rp.uniform(0.18, 0.45) * (1 + ri.normal(0, 0.08))
    level = _lung_level(th, side)
    sector = _sector(th, side, -0.75, 1.0)
    rim = sigmoid_edge(level - (1 - depth), 0.015) * th.lungs[side] * sector
    line = np.exp(-((level - (1 - depth)) / 0.012) ** 2) * th.lungs[side] * sector  # visceral pleura
    no_markings = -0.12 * th.mods.marking_gain * th.markings * (1 - th.heart)
    return Effect(rim * (no_markings - 0.09 * k) + 0.12 * k * line)


FINDINGS: dict[str, Callable[..., Effect]] = {
    "Atelectasis": atelectasis, "Cardiomegaly": cardiomegaly, "Consolidation": consolidation, "Edema": edema,
    "Effusion": effusion, "Emphysema": emphysema, "Fibrosis": fibrosis, "Hernia": hernia,
    "Infiltration": infiltration, "Mass": mass, "Nodule": nodule, "Pleural_Thickening": pleural_thickening,
    "Pneumonia": pneumonia, "Pneumothorax": pneumothorax,
}


def combine_mods(effects: list[dict[str, float]]) -> Modifiers:
    """Scales multiply, shifts add."""
    out = {"heart_scale": 1.0, "lung_scale": 1.0, "diaphragm_shift": 0.0, "dome_scale": 1.0, "lucency": 0.0,
           "marking_gain": 1.0}
    for mods in effects:
        for key, value in mods.items():
            out[key] = out[key] + value if key in ("diaphragm_shift", "lucency") else out[key] * value
    out["dome_scale"] = max(out["dome_scale"], 0.1)
    out["marking_gain"] = max(out["marking_gain"], 0.1)
    return Modifiers(**out)

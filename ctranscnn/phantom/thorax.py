"""A procedurally drawn frontal chest radiograph: the base image of the cxr14 and cxr11 phantoms.

Everything is drawn as an attenuation map over anatomical coordinates (u, v) in [-1, 1] (u to the
image right = the patient's left, as on a PA film; v downwards). The per-image pose maps pixel
coordinates to (u, v), so anatomy, findings and devices are written once, in anatomical terms.
`Anatomy` is per patient (it is shared by all follow-ups); `Pose` is per image.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ctranscnn.phantom.common import grid, polyline_distance, sigmoid_edge, smooth_noise, spline, superellipse

SIDES = (-1, 1)  # -1: image left = patient's right lung


@dataclass(frozen=True)
class Anatomy:
    """Per-patient build. Defaults are a mid-sized adult; `sample_anatomy` varies them."""

    body_w: float = 0.86
    lung_offset: float = 0.39
    lung_ax: float = 0.26
    lung_ay: float = 0.62
    lung_cy: float = -0.12
    diaphragm_y: float = 0.44
    dome_h: float = 0.12
    heart_cx: float = 0.07
    heart_cy: float = 0.14
    heart_ax: float = 0.28
    heart_ay: float = 0.21
    rib_v0: float = -0.78
    rib_dv: float = 0.125
    gastric_bubble: float = 0.12
    marking_seed: int = 0
    bone_density: float = 1.0


@dataclass(frozen=True)
class Pose:
    """Per-image acquisition: geometry, inspiration, exposure and noise."""

    angle: float = 0.0
    scale: float = 1.0
    dx: float = 0.0
    dy: float = 0.0
    inspiration: float = 0.0
    window_lo: float = 0.0
    window_hi: float = 0.95
    gamma: float = 1.0
    tilt: float = 0.0
    noise: float = 0.015
    ap: bool = False


@dataclass(frozen=True)
class Modifiers:
    """Anatomy changes caused by findings (cardiomegaly, emphysema, atelectatic volume loss)."""

    heart_scale: float = 1.0
    lung_scale: float = 1.0
    diaphragm_shift: float = 0.0
    dome_scale: float = 1.0
    lucency: float = 0.0
    marking_gain: float = 1.0
    side_diaphragm: dict[int, float] = field(default_factory=dict)


def sample_anatomy(rng: np.random.Generator) -> Anatomy:
    return Anatomy(
        body_w=rng.uniform(0.78, 0.93), lung_offset=rng.uniform(0.36, 0.42), lung_ax=rng.uniform(0.23, 0.29),
        lung_ay=rng.uniform(0.58, 0.66), lung_cy=rng.uniform(-0.15, -0.09), diaphragm_y=rng.uniform(0.38, 0.5),
        dome_h=rng.uniform(0.08, 0.15), heart_cx=rng.uniform(0.06, 0.12), heart_cy=rng.uniform(0.1, 0.18),
        heart_ax=rng.uniform(0.25, 0.31), heart_ay=rng.uniform(0.18, 0.23), rib_v0=rng.uniform(-0.82, -0.74),
        rib_dv=rng.uniform(0.115, 0.135), gastric_bubble=rng.uniform(0.0, 0.14),
        marking_seed=int(rng.integers(2**31)), bone_density=rng.uniform(0.8, 1.15),
    )


def sample_pose(rng: np.random.Generator, jitter: float = 1.0, noise: float = 1.0, ap: bool = False) -> Pose:
    return Pose(
        angle=np.deg2rad(rng.normal(0, 2.5)) * jitter, scale=1 + rng.normal(0, 0.035) * jitter,
        dx=rng.normal(0, 0.03) * jitter, dy=rng.normal(0, 0.03) * jitter, inspiration=rng.normal(0, 0.025) * jitter,
        window_lo=rng.uniform(-0.06, 0.06), window_hi=rng.uniform(0.85, 1.05), gamma=rng.uniform(0.8, 1.25),
        tilt=rng.uniform(-0.06, 0.06), noise=rng.uniform(0.008, 0.025) * noise, ap=ap,
    )


# Means of sample_pose's draws (noise: times its multiplier).
POSE_MEANS = {"angle": 0.0, "scale": 1.0, "dx": 0.0, "dy": 0.0, "inspiration": 0.0, "window_lo": 0.0,
              "window_hi": 0.95, "gamma": 1.025, "tilt": 0.0, "noise": 0.0165}


def shared_pose(image: Pose, patient: Pose, persistence: float, noise: float = 1.0) -> Pose:
    """The pose of one follow-up when a patient's acquisitions persist (same machine, technique, positioning):
    every field mixes the patient's and the image's draw (both from sample_pose) around its mean with weights
    sqrt(persistence) and sqrt(1 - persistence), so each field keeps its mean and variance while two images of
    one patient correlate by `persistence`."""
    if not 0 <= persistence <= 1:
        raise ValueError(f"persistence must be in [0, 1], got {persistence}")
    if persistence == 0:
        return image
    a, b = np.sqrt(persistence), np.sqrt(1 - persistence)
    mixed = {}
    for name, mean in POSE_MEANS.items():
        mean *= noise if name == "noise" else 1.0
        mixed[name] = mean + a * (getattr(patient, name) - mean) + b * (getattr(image, name) - mean)
    return replace(image, **mixed)


class Thorax:
    """The rendered base anatomy of one image: coordinates, masks and attenuation `A` (size x size)."""

    def __init__(self, anatomy: Anatomy, pose: Pose, size: int, mods: Modifiers = Modifiers()) -> None:
        self.anatomy, self.pose, self.size, self.mods = anatomy, pose, size, mods
        x, y = grid(size)
        c, s = np.cos(pose.angle), np.sin(pose.angle)
        self.u = ((c * (x - pose.dx) + s * (y - pose.dy)) / pose.scale).astype(np.float32)
        self.v = ((-s * (x - pose.dx) + c * (y - pose.dy)) / pose.scale).astype(np.float32)
        self.px = 2.0 / (size * pose.scale)  # one pixel in (u, v) units: the softest sensible edge
        self.A = self._draw()

    # geometry shared with findings and devices
    def lung_center(self, side: int) -> tuple[float, float]:
        a = self.anatomy
        return side * a.lung_offset * (1 + 0.3 * (self.mods.lung_scale - 1)), a.lung_cy

    def lung_axes(self) -> tuple[float, float]:
        a, k = self.anatomy, self.mods.lung_scale
        return a.lung_ax * k, a.lung_ay * k

    def diaphragm(self, side: int) -> float:
        """Lateral (costophrenic) level of the hemidiaphragm on `side`."""
        a, m = self.anatomy, self.mods
        right_higher = -0.035 if side < 0 else 0.0
        return a.diaphragm_y + self.pose.inspiration + m.diaphragm_shift + right_higher + m.side_diaphragm.get(side, 0.0)

    def dome(self, side: int) -> np.ndarray:
        cx, _ = self.lung_center(side)
        ax, _ = self.lung_axes()
        t = np.clip((self.u - cx) / ax, -1, 1)
        return self.diaphragm(side) - self.anatomy.dome_h * self.mods.dome_scale * (1 - t**2) * 0.9

    def heart_axes(self) -> tuple[float, float]:
        a, k = self.anatomy, self.mods.heart_scale * (1.08 if self.pose.ap else 1.0)
        return a.heart_ax * k, a.heart_ay * (1 + 0.4 * (k - 1))

    def hilum(self, side: int) -> tuple[float, float]:
        return side * 0.17, self.anatomy.lung_cy + 0.05

    def carina(self) -> tuple[float, float]:
        return 0.0, self.anatomy.lung_cy - 0.2

    def _draw(self) -> np.ndarray:
        a, u, v, px = self.anatomy, self.u, self.v, self.px
        body = sigmoid_edge(1 - superellipse(u, v, 0, 0.25, a.body_w, 1.2, 3), 4 * px / a.body_w)
        neck = sigmoid_edge(0.2 - np.abs(u), 2 * px) * sigmoid_edge(-0.6 - v, 2 * px)
        body = np.maximum(body, neck)
        self.lungs = {}
        ax, ay = self.lung_axes()
        for side in SIDES:
            cx, cy = self.lung_center(side)
            shape = sigmoid_edge(1 - superellipse(u, v, cx, cy, ax, ay, 2.6), 3 * px / ax)
            self.lungs[side] = shape * sigmoid_edge(self.dome(side) - v, 1.5 * px)
        lung = self.lungs[-1] + self.lungs[1]
        hax, hay = self.heart_axes()
        self.heart = sigmoid_edge(1 - superellipse(u, v, a.heart_cx, a.heart_cy, hax, hay, 2.0), 2 * px / hax)
        mediastinum = sigmoid_edge(0.1 - np.abs(u - 0.01), 2 * px) * sigmoid_edge(a.heart_cy - v, 0.05)
        cx0, cy0 = self.carina()
        trachea = sigmoid_edge(0.028 - np.abs(u - cx0), px) * sigmoid_edge(cy0 - v, px)
        self.markings = self._markings()
        A = 0.55 * body
        A = A - (0.36 + self.mods.lucency) * lung * (1 - 0.85 * self.heart)
        A = A + 0.1 * self.heart + 0.08 * mediastinum * (1 - lung) - 0.12 * trachea
        A = A + 0.12 * self.mods.marking_gain * self.markings * lung * (1 - self.heart)
        A = A + a.bone_density * self._bones(body)
        if a.gastric_bubble > 0.03:
            gy = self.diaphragm(1) + 0.08
            A = A - 0.12 * sigmoid_edge(1 - superellipse(u, v, 0.3, gy, a.gastric_bubble, 0.6 * a.gastric_bubble), 0.2)
        return A.astype(np.float32)

    def _markings(self) -> np.ndarray:
        """Vessel-like ridges fanning out from the hila, fixed per patient."""
        rng = np.random.default_rng(self.anatomy.marking_seed)
        ridges = np.exp(-(smooth_noise(rng, self.u, self.v, 4.0, 20) / 0.3) ** 2)
        out = np.zeros_like(self.u)
        for side in SIDES:
            hx, hy = self.hilum(side)
            out += np.exp(-np.hypot(self.u - hx, self.v - hy) / 0.3)
        return ridges * np.minimum(out, 1.0)

    def _bones(self, body: np.ndarray) -> np.ndarray:
        a, u, v, px = self.anatomy, self.u, self.v, self.px
        spine = sigmoid_edge(0.055 - np.abs(u), px) * (0.75 + 0.25 * np.cos(2 * np.pi * v / 0.09))
        bones = 0.2 * spine
        au = np.abs(u)
        lateral = sigmoid_edge(au - 0.06, px) * sigmoid_edge(a.body_w - 0.05 - au, 2 * px)
        for k in range(10):
            vk = a.rib_v0 + k * a.rib_dv
            d = np.abs(v - (vk - 0.1 * au + 0.42 * au**2))
            bones = bones + 0.09 * np.clip(1 - d / 0.026, 0, 1) ** 0.5 * lateral
            d = np.abs(v - (vk + 0.05 + 0.3 * (0.85 - au)))  # faint anterior ribs
            bones = bones + 0.035 * np.clip(1 - d / 0.02, 0, 1) * lateral * sigmoid_edge(au - 0.15, 2 * px)
        lift = -0.05 if self.pose.ap else 0.0
        for side in SIDES:
            curve = spline([(side * 0.07, -0.66 + lift), (side * 0.3, -0.71 + lift), (side * 0.62, -0.8 + lift)], 6)
            bones = bones + 0.16 * sigmoid_edge(0.022 - polyline_distance(u, v, curve), px)
        return bones * body

    def display(self, A: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Attenuation to an 8-bit radiograph: fixed per-image window (never data-dependent, so a
        finding changes only its own pixels), gamma, exposure gradient, quantum-like noise."""
        p = self.pose
        img = np.clip((A - p.window_lo) / (p.window_hi - p.window_lo), 0, 1) ** p.gamma
        img = img * (1 + p.tilt * self.v)
        img = img + rng.normal(0, p.noise, img.shape).astype(np.float32) * (0.5 + np.sqrt(np.clip(img, 0, 1)))
        return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)


def with_mods(thorax: Thorax, mods: Modifiers) -> Thorax:
    return Thorax(thorax.anatomy, thorax.pose, thorax.size, mods)


__all__ = ["Anatomy", "Pose", "Modifiers", "Thorax", "sample_anatomy", "sample_pose", "shared_pose", "with_mods", "replace", "SIDES"]

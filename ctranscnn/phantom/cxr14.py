"""cxr14 phantom: an NIH ChestX-ray14 stand-in written in the NIH released layout.

Label sets are drawn from the real NIH label-combination table, patients get follow-up counts from
the real images-per-patient table, and a follow-up repeats the previous image's label set with the
real repeat probability (else draws afresh, which keeps the marginal distribution exact). Anatomy
and finding geometry are per patient, and so, in part, is the acquisition (view, positioning, exposure: the
same ward and machine), with the persistence of NIH's view positions; a patient-leaky split therefore lets
a model recognise patients, as on the real data.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from ctranscnn.io import atomic_write_bytes, atomic_write_text, write_csv
from ctranscnn.phantom.common import (ACQUISITION, FINDING_IMAGE, FINDING_PATIENT, IMAGE, NOISE, PATIENT, PLAN, VIEW,
                                      encode_image, mask_box, run_pool, stream)
from ctranscnn.phantom.findings import DEFAULT_STRENGTH, FINDINGS, combine_mods
from ctranscnn.phantom.nih_stats import NIH_CLASSES, NO_FINDING, load_tables
from ctranscnn.phantom.thorax import Modifiers, Thorax, sample_anatomy, sample_pose, shared_pose

MODIFIER_FINDINGS = ("Cardiomegaly", "Emphysema")
DATA_ENTRY_COLUMNS = ["Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age", "Patient Gender",
                      "View Position", "OriginalImage[Width", "Height]", "OriginalImagePixelSpacing[x", "y]"]
BBOX_LABEL = {"Infiltration": "Infiltrate"}  # the one label NIH's box file spells differently


@dataclass
class Cxr14Config:
    """Knobs of the cxr14 phantom. `strength` multiplies each finding's contrast (difficulty)."""

    abnormal_only: bool = False  # only images with >= 1 finding, like the authors' 51,759-image subset
    label_noise: float = 0.0  # P(drop a true finding from the written labels); spurious ones are added
    # at label_noise x prevalence, so the written prevalence stays close to the table
    contrast: float = 1.0  # global multiplier on every finding's strength
    strength: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_STRENGTH))
    noise: float = 1.0  # multiplier on image noise
    pose_jitter: float = 1.0  # multiplier on per-image rotation, scale, shift and inspiration
    # Correlation of a patient's acquisitions (view position, positioning, exposure) across follow-ups; what
    # makes follow-ups look alike, so a patient-leaky split pays. None: NIH's value, from its view positions
    # (nih_persistence(), about 0.70); 0: every image acquired independently.
    persistence: float | None = None
    max_images_per_patient: int = 30  # caps NIH's 184-image patients so small datasets keep many patients
    test_fraction: float = 0.2  # of patients (NIH's own test list is a patient-wise 23 %)
    images_per_folder: int = 10_000  # NIH ships images_001 ... images_012 of 10k images each


@lru_cache(maxsize=1)
def nih_persistence() -> float:
    """The acquisition correlation at which the phantom repeats the previous follow-up's view position as often
    as NIH does (0.755, against 0.52 for independent views): views are a thresholded latent Gaussian with this
    correlation between a patient's images (about 0.70)."""
    from scipy.optimize import brentq
    from scipy.stats import multivariate_normal, norm

    scalars = load_tables().scalars
    pa, target = scalars["frac_pa"], scalars["view_repeat_prob"]
    t = float(norm.ppf(pa))

    def repeat(rho: float) -> float:  # P(both PA) + P(both AP) for latents correlated by rho
        both_pa = multivariate_normal(mean=[0, 0], cov=[[1, rho], [rho, 1]]).cdf([t, t])
        return 2 * both_pa + 1 - 2 * pa

    return float(brentq(lambda rho: repeat(rho) - target, 0.0, 0.999, xtol=1e-6))


def acquisition_persistence(cfg: Cxr14Config) -> float:
    p = nih_persistence() if cfg.persistence is None else cfg.persistence
    if not 0 <= p < 1:
        raise ValueError(f"persistence must be in [0, 1), got {p}")
    return p


def _views(seed: int, u: np.ndarray, patient: np.ndarray, n_pat: int, frac_pa: float, p: float) -> np.ndarray:
    """PA/AP per image from uniforms `u`, mixed with a per-patient latent when acquisitions persist."""
    if p > 0:
        from scipy.special import ndtr, ndtri

        z = np.sqrt(p) * stream(seed, VIEW).standard_normal(n_pat)[patient] + np.sqrt(1 - p) * ndtri(u)
        u = ndtr(z)
    return np.where(u < frac_pa, "PA", "AP")


def _images_per_patient(rng: np.random.Generator, n: int, patients: int | None, cfg: Cxr14Config) -> np.ndarray:
    tables = load_tables()
    keep = tables.images_per_patient <= cfg.max_images_per_patient
    ks, probs = tables.images_per_patient[keep], tables.patient_probs[keep] / tables.patient_probs[keep].sum()
    if patients is None:
        counts = rng.choice(ks, size=n, p=probs)  # at most n patients are ever needed
        total = np.cumsum(counts)
        last = int(np.searchsorted(total, n))
        counts = counts[: last + 1].copy()
        counts[-1] -= total[last] - n
        return counts
    if not 1 <= patients <= n:
        raise ValueError(f"--patients must be in [1, n={n}], got {patients}")
    counts = rng.choice(ks, size=patients, p=probs).astype(float)
    counts = np.maximum(1, np.floor(1 + (counts - 1) * (n - patients) / max(counts.sum() - patients, 1))).astype(int)
    extra = n - counts.sum()  # spread the rounding remainder over the largest patients
    order = np.argsort(-counts, kind="stable")
    while extra != 0:
        for i in order:
            if extra == 0:
                break
            if extra > 0:
                counts[i] += 1
                extra -= 1
            elif counts[i] > 1:
                counts[i] -= 1
                extra += 1
    return counts


def plan_cxr14(n: int, seed: int = 0, patients: int | None = None, cfg: Cxr14Config = Cxr14Config()) -> pd.DataFrame:
    """Metadata of every image, without drawing any: one row per image, in file order."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    tables = load_tables()
    rng = stream(seed, PLAN)
    counts = _images_per_patient(rng, n, patients, cfg)
    patient = np.repeat(np.arange(len(counts)), counts)
    followup = np.concatenate([np.arange(k) for k in counts])
    combos, probs = np.asarray(tables.combos), tables.combo_probs.copy()
    if cfg.abnormal_only:
        probs[combos == NO_FINDING] = 0
        probs /= probs.sum()
    repeat = tables.scalars["repeat_prob_abnormal" if cfg.abnormal_only else "repeat_prob_all"]
    fresh = rng.choice(len(combos), size=n, p=probs)
    copies = (followup > 0) & (rng.random(n) < repeat)
    source = np.maximum.accumulate(np.where(copies, 0, np.arange(n)))
    labels = combos[fresh[source]]
    multi_hot = _multi_hot(labels)
    written = _noisy_labels(rng, multi_hot, cfg.label_noise, probs @ tables.multi_hot()) if cfg.label_noise else multi_hot
    n_pat = len(counts)
    age0 = np.clip(rng.normal(tables.scalars["age_mean"], tables.scalars["age_std"], n_pat), 1, 90).astype(int)
    male = rng.random(n_pat) < tables.scalars["frac_male"]
    test_patient = rng.random(n_pat) < cfg.test_fraction
    return pd.DataFrame({
        "index": np.arange(n), "patient": patient, "followup": followup,
        "labels": labels, "written_labels": [_combo(row) for row in written],
        "age": age0[patient] + followup // 4, "gender": np.where(male[patient], "M", "F"),
        "view": _views(seed, rng.random(n), patient, n_pat, tables.scalars["frac_pa"], acquisition_persistence(cfg)),
        "split": np.where(test_patient[patient], "test", "train_val"),
    })


def _multi_hot(labels) -> np.ndarray:
    out = np.zeros((len(labels), len(NIH_CLASSES)), np.uint8)
    index = {c: i for i, c in enumerate(NIH_CLASSES)}
    for row, combo in enumerate(labels):
        for name in combo.split("|"):
            if name != NO_FINDING:
                out[row, index[name]] = 1
    return out


def _combo(row: np.ndarray) -> str:
    return "|".join(c for c, on in zip(NIH_CLASSES, row) if on) or NO_FINDING


def _noisy_labels(rng, multi_hot: np.ndarray, rate: float, prevalence: np.ndarray) -> np.ndarray:
    if not 0 <= rate <= 1:
        raise ValueError(f"label_noise must be in [0, 1], got {rate}")
    drop = rng.random(multi_hot.shape) < rate
    add = rng.random(multi_hot.shape) < rate * prevalence
    return np.where(multi_hot == 1, ~drop, add).astype(np.uint8)


def render_cxr14(seed: int, index: int, patient: int, labels: str, size: int, cfg: Cxr14Config = Cxr14Config(),
                 ap: bool = False, omit: tuple[str, ...] = ()) -> tuple[np.ndarray, list[tuple]]:
    """One radiograph and its boxes [(finding, x, y, w, h)] in pixel coordinates of the size x size image.
    `omit` leaves findings out while every random draw stays the same (for tests and figures)."""
    present = [c for c in labels.split("|") if c != NO_FINDING and c not in omit]
    unknown = set(present) - set(FINDINGS)
    if unknown:
        raise ValueError(f"unknown findings {sorted(unknown)} in {labels!r}")
    anatomy = sample_anatomy(stream(seed, PATIENT, patient))
    pose = shared_pose(sample_pose(stream(seed, IMAGE, index), cfg.pose_jitter, cfg.noise, ap),
                       sample_pose(stream(seed, ACQUISITION, patient), cfg.pose_jitter, cfg.noise, ap),
                       acquisition_persistence(cfg), cfg.noise)
    cls = {c: i for i, c in enumerate(NIH_CLASSES)}

    def rngs(name: str):
        return stream(seed, FINDING_PATIENT, patient, cls[name]), stream(seed, FINDING_IMAGE, index, cls[name])

    def k(name: str) -> float:
        return cfg.contrast * cfg.strength.get(name, 1.0)

    mod_effects = {c: FINDINGS[c](None, *rngs(c), k(c)).mods for c in present if c in MODIFIER_FINDINGS}
    th = Thorax(anatomy, pose, size, combine_mods(list(mod_effects.values())))
    A = th.A.copy()
    boxes = []
    for name in present:
        if name in MODIFIER_FINDINGS:
            others = [m for c, m in mod_effects.items() if c != name]
            field = th.A - Thorax(anatomy, pose, size, combine_mods(others) if others else Modifiers()).A
        else:
            field = FINDINGS[name](th, *rngs(name), k(name)).field
            A += field
        box = mask_box(field)
        if box is not None:
            boxes.append((name, *box))
    return th.display(A, stream(seed, NOISE, index)), boxes


def _render_job(job) -> list[tuple]:
    out, seed, index, patient, labels, size, cfg, ap, rel = job
    pixels, boxes = render_cxr14(seed, index, patient, labels, size, cfg, ap)
    atomic_write_bytes(Path(out) / rel, encode_image(pixels, ".png"))
    return boxes


def generate_cxr14(out: Path, n: int, size: int = 128, seed: int = 0, patients: int | None = None,
                   cfg: Cxr14Config = Cxr14Config(), workers: int = 2, progress: bool = False) -> pd.DataFrame:
    """Write the phantom in the NIH layout under `out`; returns the plan (with image ids and paths)."""
    from tqdm import tqdm

    out = Path(out)
    plan = plan_cxr14(n, seed, patients, cfg)
    plan["image_id"] = [f"{p + 1:08d}_{f:03d}.png" for p, f in zip(plan.patient, plan.followup)]
    plan["path"] = [f"images_{i // cfg.images_per_folder + 1:03d}/images/{name}"
                    for i, name in zip(plan["index"], plan.image_id)]
    jobs = [(str(out), seed, int(r.index), int(r.patient), r.labels, size, cfg, r.view == "AP", r.path)
            for r in plan.itertuples()]
    boxes = []
    results = run_pool(_render_job, jobs, workers)
    for row, found in zip(plan.itertuples(), tqdm(results, total=len(jobs), disable=not progress, desc="cxr14")):
        boxes += [(row.image_id, BBOX_LABEL.get(name, name), x, y, w, h) for name, x, y, w, h in found]
    spacing = round(0.143 * 3000 / size, 6)  # the film's field of view (~43 cm) over the written width
    entry = pd.DataFrame({
        "Image Index": plan.image_id, "Finding Labels": plan.written_labels, "Follow-up #": plan.followup,
        "Patient ID": plan.patient + 1, "Patient Age": plan.age, "Patient Gender": plan.gender,
        "View Position": plan.view, "OriginalImage[Width": size, "Height]": size,
        "OriginalImagePixelSpacing[x": spacing, "y]": spacing,
    })[DATA_ENTRY_COLUMNS]
    write_csv(entry, out / "Data_Entry_2017.csv")
    # NIH's header, verbatim: unquoted commas inside "Bbox [x,y,w,h]" and three empty trailing names
    rows = [f"{name},{label},{x},{y},{w},{h}" for name, label, x, y, w, h in boxes]
    atomic_write_text(out / "BBox_List_2017.csv", "\n".join(["Image Index,Finding Label,Bbox [x,y,w,h],,,", *rows]) + "\n")
    for split, name in (("train_val", "train_val_list.txt"), ("test", "test_list.txt")):
        atomic_write_text(out / name, "\n".join(plan.image_id[plan.split == split]) + "\n")
    return plan

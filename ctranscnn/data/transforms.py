"""Image decoding and normalisation, the authors' way by default.

The authors' pipeline (mmcls, spec 5.5): cv2 loads 3-channel colour (grey PNGs replicated, alpha
dropped, 16-bit PNGs cut to their high byte by libpng), resizes to exactly size x size with
Pillow bicubic (aspect ratio not kept), flips horizontally with p = 0.5 in training (the only
augmentation), and normalises RGB with ImageNet mean/std on 0-255. Here decoding yields uint8
H x W x C with C = 1 for grey content (stored once, replicated to 3 channels at normalisation,
which is exactly equivalent) and C = 3 for colour.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ctranscnn.data.errors import DataError, bomb_message
from ctranscnn.data.locate import empty_file

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}
SIXTEEN_BIT = ("shift", "minmax")


@dataclass
class PreprocessConfig:
    """size: int (square) or (height, width). resample: Pillow filter name. flip_p: horizontal-flip
    probability in training. mean/std: per RGB channel on 0-255. sixteen_bit: 'shift' keeps the
    high byte (as cv2 did for the authors), 'minmax' stretches each image's range to 0-255."""

    size: int | tuple[int, int] = 224
    resample: str = "bicubic"
    flip_p: float = 0.5
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    sixteen_bit: str = "shift"

    def __post_init__(self) -> None:
        size = (self.size, self.size) if isinstance(self.size, int) else tuple(self.size)
        if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
            raise ValueError(f"preprocess.size must be a positive int or (height, width), got {self.size!r}")
        self.size = self.size if isinstance(self.size, int) else size
        if self.resample not in RESAMPLE:
            raise ValueError(f"preprocess.resample must be one of {', '.join(RESAMPLE)}, got {self.resample!r}")
        if self.sixteen_bit not in SIXTEEN_BIT:
            raise ValueError(f"preprocess.sixteen_bit must be one of {', '.join(SIXTEEN_BIT)}, got {self.sixteen_bit!r}")
        if not 0.0 <= self.flip_p <= 1.0:
            raise ValueError(f"preprocess.flip_p must be in [0, 1], got {self.flip_p}")
        self.mean, self.std = tuple(map(float, self.mean)), tuple(map(float, self.std))
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"preprocess.mean/std need 3 values each (std > 0), got {self.mean}, {self.std}")

    @property
    def hw(self) -> tuple[int, int]:
        return (self.size, self.size) if isinstance(self.size, int) else self.size

    def decode_key(self) -> dict:
        """The settings that change decoded pixels (what the decode cache is keyed by)."""
        return {"hw": list(self.hw), "resample": self.resample, "sixteen_bit": self.sixteen_bit}

    @classmethod
    def from_dict(cls, d: dict) -> "PreprocessConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown preprocess field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)


def to_uint8(im: Image.Image, sixteen_bit: str) -> np.ndarray:
    """A decoded Pillow image as uint8 H x W (grey) or H x W x 3 (colour; alpha dropped as cv2 does)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(im, dtype=np.float64 if im.mode == "F" else np.int64)
        if sixteen_bit == "minmax":
            lo, hi = a.min(), a.max()
            return np.round((a - lo) * (255.0 / max(hi - lo, 1e-12))).astype(np.uint8)
        return (np.clip(a, 0, 65535).astype(np.int64) >> 8).astype(np.uint8)
    if im.mode in ("1", "L", "LA"):
        return np.asarray(im.convert("L"))
    return np.asarray(im.convert("RGB"))


def read_image(path: Path, sixteen_bit: str = "shift") -> np.ndarray:
    """Decode an image file (8/16-bit grey PNG, RGB/RGBA/palette PNG, JPEG); DataError names a bad file."""
    try:
        with Image.open(path) as im:
            if im.format == "JPEG":  # cv2 honours the EXIF orientation of JPEGs
                im = ImageOps.exif_transpose(im)
            im.load()
            return to_uint8(im, sixteen_bit)
    except FileNotFoundError:
        raise DataError(f"{path}: missing image") from None
    except Image.DecompressionBombError as e:  # not an OSError: Pillow's guard against decompression bombs
        raise DataError(f"{path}: {bomb_message(e)}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        if is_dicom(path):
            raise DataError(f"{path}: DICOM is not supported; convert it to PNG (8- or 16-bit grey) first") from None
        empty = empty_file(path)
        raise DataError(f"{path}: unreadable or corrupt image ({'empty file: 0 bytes' if empty else e})") from None


def is_dicom(path: Path) -> bool:
    """A DICOM Part 10 file: a 128-byte preamble, then 'DICM'."""
    try:
        with open(path, "rb") as f:
            return f.read(132)[128:] == b"DICM"
    except OSError:
        return False


def resize(a: np.ndarray, hw: tuple[int, int], resample: str) -> np.ndarray:
    """Resize to exactly height x width (aspect ratio not kept) with a Pillow filter; no-op at that size."""
    if a.shape[:2] == hw:
        return a
    return np.asarray(Image.fromarray(a).resize((hw[1], hw[0]), RESAMPLE[resample]))


def decode(source: Path | np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """A file or an in-memory uint8 image, resized: uint8 H x W x C, C = 1 for grey content, else 3."""
    a = read_image(source, cfg.sixteen_bit) if isinstance(source, (str, Path)) else np.asarray(source)
    a = resize(a, cfg.hw, cfg.resample)
    if a.ndim == 3 and (a[..., 0] == a[..., 1]).all() and (a[..., 0] == a[..., 2]).all():
        a = a[..., 0]  # colour file with grey content (e.g. NIH's RGBA PNGs)
    return a[..., None] if a.ndim == 2 else a


def normalize(a: np.ndarray, cfg: PreprocessConfig, flip: bool = False) -> torch.Tensor:
    """uint8 H x W x C (C = 1 or 3) -> float32 3 x H x W, (x - mean) / std per RGB channel.

    Done in numpy: per-sample torch ops pay a thread-pool sync each, which dominates on busy CPUs.
    """
    x = a.transpose(2, 0, 1)
    if flip:
        x = x[..., ::-1]
    mean = np.asarray(cfg.mean, np.float32).reshape(3, 1, 1)
    out = np.empty((3, *x.shape[1:]), np.float32)
    np.subtract(x, mean, out=out, dtype=np.float32)  # a grey channel broadcasts to all three
    out /= np.asarray(cfg.std, np.float32).reshape(3, 1, 1)
    return torch.from_numpy(out)

"""Run checkpoints: everything needed to continue a run exactly, or to use its model without the config file.

`last.pt` is rewritten at every epoch end and every `train.checkpoint_every` steps (the resume point);
`best.pt` holds the epoch with the best validation mean AUC. Both are written atomically (temporary file
in the same folder, then os.replace), so a kill at any moment leaves the previous complete file.
They load with torch.load(weights_only=True): tensors and plain containers only.
"""
from __future__ import annotations

import pickle
import random
from pathlib import Path

import numpy as np
import torch

from ctranscnn.io import atomic_path, write_json

FORMAT = "ctranscnn-run-checkpoint/1"


def rng_state() -> dict:
    """Python, NumPy and torch (CPU and CUDA) RNG states of this process."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, payload: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **payload}, tmp)
    # A small readable sidecar: where the run stands, without loading the checkpoint.
    state = payload.get("state", {})
    info = {k: state.get(k) for k in ("step", "epochs_done", "best_epoch", "best_val_mauc", "finished")}
    write_json(path.with_suffix(".json"), info)  # best_val_mauc is -inf before a finite AUC: written as null


class CheckpointError(ValueError):
    """A checkpoint file that exists but cannot be used (damaged, or not a run checkpoint)."""


# What to do about a damaged checkpoint: the two files of a run are independent copies of its state.
ADVICE = ("last.pt and best.pt are independent: use the other one (--checkpoint best|last for evaluate, predict "
          "and export-onnx) or restore this file from a copy; resuming needs an intact last.pt, so without one "
          "restart the run (train --resume RUN_DIR --restart)")


def load_checkpoint(path: str | Path) -> dict:
    """The checkpoint at `path`; FileNotFoundError if absent, CheckpointError naming the file if unusable."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except PermissionError:
        raise
    # What torch.load raises on a truncated or overwritten file varies with where the damage is.
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:120]
        raise CheckpointError(f"{path}: damaged or truncated checkpoint ({path.stat().st_size:,} bytes; {reason}). "
                              f"{ADVICE}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path}: not a ctranscnn run checkpoint (format {found!r}, expected {FORMAT!r})")
    return ckpt

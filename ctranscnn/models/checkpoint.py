"""Load checkpoints saved by the authors' mmcls code into our modules.

Our parameter names are the authors' (`backbone.*`, `head.*`), so the mapping is the identity; this module
checks every key and shape, loads strictly and reports precisely what does not fit.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import torch
import torch.nn as nn


class CheckpointMismatch(KeyError):
    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Return (state_dict, meta) from an mmcls `.pth` (dict with `state_dict` and `meta`) or a bare state dict."""
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"{path}: not loadable with torch.load(weights_only=True); it holds objects other than tensors and "
            f"plain containers ({err}). Re-save its 'state_dict' alone with the code that wrote it."
        ) from err
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a dict, got {type(obj).__name__}")
    state = obj.get("state_dict", obj)
    meta = obj.get("meta", {}) if "state_dict" in obj else {}
    return {k.removeprefix("module."): v for k, v in state.items()}, meta


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Raise CheckpointMismatch naming every missing, unexpected or mis-shaped key."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shaped = [f"{k}: {tuple(state[k].shape)} in {source}, {tuple(own[k].shape)} in model"
              for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    problems = [f"missing key {k}" for k in missing] + [f"unexpected key {k}" for k in unexpected]
    problems += [f"shape mismatch {s}" for s in shaped]
    if problems:
        shown = "\n  ".join(problems[:20]) + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise CheckpointMismatch(f"{source} does not fit the model ({len(problems)} problems):\n  {shown}")


def load_authors_checkpoint(model: nn.Module, path: str | Path) -> dict:
    """Load an authors' checkpoint strictly into `model`; returns the checkpoint's meta (e.g. CLASSES)."""
    state, meta = read_state_dict(path)
    check_state_dict(model, state, source=str(path))
    model.load_state_dict(state, strict=True)
    return meta

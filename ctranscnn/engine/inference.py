"""A finished run as a predictor: model, class names, preprocessing and thresholds from the run folder only."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ctranscnn.data.transforms import PreprocessConfig, decode, normalize
from ctranscnn.engine.checkpoint import load_checkpoint
from ctranscnn.engine.config import RunConfig, from_dict


@dataclass
class LoadedRun:
    run_dir: Path
    which: str  # 'best' or 'last'
    model: nn.Module
    cfg: RunConfig
    classes: list[str]
    preprocess: PreprocessConfig
    checkpoint: dict

    def thresholds(self, kind: str = "0.5") -> np.ndarray:
        """Per-class thresholds: a number for all classes, or 'tuned' (on validation, from metrics.json)."""
        if kind != "tuned":
            return np.full(len(self.classes), float(kind))
        path = self.run_dir / "metrics.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no tuned thresholds (the run has not finished its evaluation)")
        entry = json.loads(path.read_text()).get(self.which)
        if not entry:
            raise KeyError(f"{path}: no '{self.which}' checkpoint metrics")
        return np.array([entry["tuned_thresholds"][c] for c in self.classes])

    def images(self, paths: list[str | Path]) -> torch.Tensor:
        """Files -> the normalised N x 3 x H x W batch the model was trained on (no flip)."""
        return torch.stack([normalize(decode(Path(p), self.preprocess), self.preprocess) for p in paths])

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor) -> np.ndarray:
        return torch.sigmoid(self.model(x)).float().numpy()


def load_run(run_dir: str | Path, which: str = "best") -> LoadedRun:
    """Rebuild the run's model on CPU in eval mode from checkpoints/<which>.pt."""
    from ctranscnn.engine.trainer import build_model

    run_dir = Path(run_dir)
    path = run_dir / "checkpoints" / f"{which}.pt"
    if which == "best" and not path.is_file() and (run_dir / "checkpoints" / "last.pt").is_file():
        raise FileNotFoundError(f"{path}: no best checkpoint (no epoch had a finite validation AUC); use last")
    ckpt = load_checkpoint(path)
    cfg = from_dict(ckpt["config"], source=str(path))
    model = build_model(cfg, len(ckpt["classes"]), ckpt["model_name"])[0]
    model.load_state_dict(ckpt["model"])
    model.eval()
    return LoadedRun(run_dir, which, model, cfg, list(ckpt["classes"]), PreprocessConfig.from_dict(ckpt["preprocess"]),
                     ckpt)

"""ONNX export of a run's fused-probability model, verified with onnxruntime."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ctranscnn.engine.rundir import RunDir
from ctranscnn.io import atomic_path, write_json


class FusedProbabilities(nn.Module):
    """x -> sigmoid(fused logits): what the authors' ONNX files compute."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model(x))


def _require(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise SystemExit(f"export-onnx needs the optional package {module!r}: pip install 'ctranscnn[onnx]'") from None


def export_onnx(run_dir: str | Path, out: str | Path, which: str = "best", opset: int = 17,
                atol: float = 1e-4) -> float:
    """Write the ONNX file (atomically) and return max |onnxruntime - PyTorch| on a random batch of 2."""
    _require("onnx")
    ort = _require("onnxruntime")
    run = RunDir(run_dir)
    wrapped = FusedProbabilities(run.load_model(which)).eval()
    preprocess = run.preprocess(which)
    h, w = preprocess.hw
    x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(0))
    out = Path(out)
    with atomic_path(out) as tmp, warnings.catch_warnings():
        # The TorchScript exporter (dynamo=False) needs no onnxscript; the batch dimension stays dynamic. Its
        # deprecation notice and the tracer's note on unpacking q, k, v (a fixed size 3) are not the user's concern.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(wrapped, (x,), str(tmp), dynamo=False, opset_version=opset, input_names=["image"],
                          output_names=["probabilities"],
                          dynamic_axes={"image": {0: "batch"}, "probabilities": {0: "batch"}})
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        got = session.run(None, {"image": x.numpy()})[0]
        with torch.no_grad():
            want = wrapped(x).numpy()
        diff = float(np.abs(got - want).max())
        if not diff <= atol:
            raise SystemExit(f"export-onnx: ONNX output differs from PyTorch by {diff:.2e} > {atol:.0e}; not written")
    try:
        thresholds = dict(zip(run.classes, run.thresholds("tuned", which).tolist()))
    except (FileNotFoundError, KeyError):
        thresholds = None
    meta = {"classes": run.classes, "preprocess": preprocess.to_dict(), "input": "N x 3 x H x W, RGB, "
            "(pixel - mean) / std on 0-255", "output": "N x C probabilities", "tuned_thresholds": thresholds,
            "model": run.checkpoint(which)["model_name"], "checkpoint": which}
    write_json(out.with_suffix(out.suffix + ".json"), meta)
    return diff

"""`python -m ctranscnn export-onnx --run RUN_DIR --out FILE`: the fused-probability model as ONNX (input
N x 3 x H x W normalised as in training; output N x C probabilities), checked against PyTorch with
onnxruntime. A <FILE>.json beside it names the classes, preprocessing and tuned thresholds."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, metavar="RUN_DIR")
    p.add_argument("--out", required=True, metavar="FILE")
    p.add_argument("--checkpoint", default="best", choices=("best", "last"))
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--atol", type=float, default=1e-4, help="max |ONNX - PyTorch| probability accepted")


def run(args: argparse.Namespace) -> int:
    from ctranscnn.engine.checkpoint import CheckpointError
    from ctranscnn.engine.export import export_onnx

    try:
        diff = export_onnx(args.run, args.out, args.checkpoint, args.opset, args.atol)
    except (OSError, CheckpointError) as err:  # OSError: a missing run, an unwritable --out
        raise SystemExit(f"export-onnx: {err}") from None
    print(f"wrote {args.out} (max |onnxruntime - PyTorch| = {diff:.2e})")
    return 0

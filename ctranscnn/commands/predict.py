"""`python -m ctranscnn predict --run RUN_DIR IMAGE|FOLDER|GLOB...`: label probabilities per image and the labels
at or above each class's threshold (like the authors' ONNX demo), from the run folder alone.

Images are read and scored in batches of --batch-size, so memory does not grow with their number; results are
printed batch by batch (--json: one list at the end). A folder means its PNG/JPEG files (recursively), a pattern
with * ? [ ] is expanded (** included). DICOM files are not supported: convert them to PNG first.
"""
from __future__ import annotations

import argparse
import glob
import json
import math
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, metavar="RUN_DIR")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files, folders of images or glob patterns")
    p.add_argument("--checkpoint", default="best", choices=("best", "last"))
    p.add_argument("--threshold", default="0.5", help="a probability in [0, 1] for every class, or 'tuned' (per "
                   "class, tuned on validation)")
    p.add_argument("--batch-size", type=int, default=32, help="images decoded and scored at a time (default 32)")
    p.add_argument("--json", action="store_true", help="print JSON")


def parse_threshold(text: str) -> str | float:
    """'tuned' or a probability in [0, 1] (NaN and infinities are not)."""
    if text == "tuned":
        return text
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:  # NaN fails too
        raise SystemExit(f"predict: --threshold must be a probability in [0, 1] or 'tuned', got {text!r}")
    return value


def expand(items: list[str]) -> list[Path]:
    """Files as given, folders as their image files, glob patterns as their matches; in a stable order."""
    from ctranscnn.data.locate import IMAGE_SUFFIXES

    paths: list[Path] = []
    for item in items:
        if Path(item).is_dir():
            found = sorted(p for p in Path(item).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                raise SystemExit(f"predict: {item}: no {'/'.join(IMAGE_SUFFIXES)} images in this folder")
        elif glob.has_magic(item):
            found = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
            if not found:
                raise SystemExit(f"predict: {item}: no file matches this pattern")
        else:
            found = [Path(item)]
        paths += found
    return paths


def run(args: argparse.Namespace) -> int:
    import torch

    from ctranscnn.data.errors import DataError
    from ctranscnn.engine.checkpoint import CheckpointError
    from ctranscnn.engine.rundir import RunDir

    threshold = parse_threshold(args.threshold)
    if args.batch_size < 1:
        raise SystemExit(f"predict: --batch-size must be at least 1, got {args.batch_size}")
    paths = expand(args.images)
    results = []
    try:
        run = RunDir(args.run)
        model = run.load_model(args.checkpoint)
        classes = run.classes
        thr = run.thresholds(str(threshold), args.checkpoint)
        if not args.json:
            print("thresholds: " + (f"{threshold:g} for every class" if threshold != "tuned" else
                                    "tuned on validation: " + ", ".join(f"{c} {t:.3f}" for c, t in zip(classes, thr))))
        for start in range(0, len(paths), args.batch_size):
            batch = paths[start:start + args.batch_size]
            with torch.no_grad():
                probs = torch.sigmoid(model(run.images(batch, args.checkpoint))).float().numpy()
            for path, p in zip(batch, probs):
                result = {"image": str(path), "probabilities": dict(zip(classes, map(float, p))),
                          "thresholds": dict(zip(classes, map(float, thr))),
                          "labels": [c for c, pc, t in zip(classes, p, thr) if pc >= t]}
                if args.json:
                    results.append(result)
                else:
                    _print(result)
    except (DataError, FileNotFoundError, KeyError, CheckpointError) as err:
        raise SystemExit(f"predict: {err}") from None
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


def _print(result: dict) -> None:
    print(result["image"])
    for c, pc in sorted(result["probabilities"].items(), key=lambda kv: -kv[1]):
        t = result["thresholds"][c]
        print(f"  {pc:7.4f}  {'>=' if pc >= t else '< '} {t:.3f}  {c}")
    print(f"  labels: {', '.join(result['labels']) or '(none at or above its threshold)'}", flush=True)

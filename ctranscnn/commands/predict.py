"""`python -m ctranscnn predict --run RUN_DIR IMAGE...`: label probabilities per image and the labels above
threshold (like the authors' ONNX demo), from the run folder alone."""
from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, metavar="RUN_DIR")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--checkpoint", default="best", choices=("best", "last"))
    p.add_argument("--threshold", default="0.5", help="a probability for every class, or 'tuned' (per class, "
                   "tuned on validation)")
    p.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    import torch

    from ctranscnn.data.errors import DataError
    from ctranscnn.engine.rundir import RunDir

    if args.threshold != "tuned":
        try:
            float(args.threshold)
        except ValueError:
            raise SystemExit(f"predict: --threshold must be a number or 'tuned', got {args.threshold!r}") from None
    try:
        run = RunDir(args.run)
        model = run.load_model(args.checkpoint)
        thr = run.thresholds(args.threshold, args.checkpoint)
        with torch.no_grad():
            probs = torch.sigmoid(model(run.images(args.images, args.checkpoint))).float().numpy()
    except (DataError, FileNotFoundError, KeyError) as err:
        raise SystemExit(f"predict: {err}") from None
    results = [{"image": str(path), "probabilities": dict(zip(run.classes, map(float, p))),
                "labels": [c for c, pc, t in zip(run.classes, p, thr) if pc >= t]}
               for path, p in zip(args.images, probs)]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        print(r["image"])
        for c, pc in sorted(r["probabilities"].items(), key=lambda kv: -kv[1]):
            print(f"  {pc:7.4f}  {c}")
        print(f"  labels: {', '.join(r['labels']) or '(none above threshold)'}")
    return 0

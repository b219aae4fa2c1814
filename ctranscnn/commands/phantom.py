"""`python -m ctranscnn phantom {cxr14,cxr11,tongue} --out DIR --n N --size PX --seed S [--patients P]`"""
from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", choices=["cxr14", "cxr11", "tongue"])
    parser.add_argument("--out", type=Path, required=True, help="output directory (the dataset root)")
    parser.add_argument("--n", type=int, required=True, help="number of images")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels (default 128)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--patients", type=int, default=None, help="number of patients (cxr14, cxr11)")
    parser.add_argument("--workers", type=int, default=2, help="processes (output is identical for any count)")
    parser.add_argument("--abnormal-only", action="store_true", help="cxr14: only images with findings")
    parser.add_argument("--label-noise", type=float, default=0.0, help="cxr14: P(dropping a true finding)")
    parser.add_argument("--contrast", type=float, default=1.0, help="cxr14: finding contrast (difficulty)")
    parser.add_argument("--persistence", type=float, help="cxr14: correlation of a patient's acquisitions (view, "
                        "positioning, exposure) across follow-ups; default: NIH's, about 0.70; 0: independent")
    parser.add_argument("--figure", type=Path, default=None, help="also save a sample grid to FIGURE.png/.pdf")


def run(args: argparse.Namespace) -> int:
    from ctranscnn import phantom
    from ctranscnn.io import save_figure

    if args.size < 16:
        raise SystemExit(f"--size must be >= 16, got {args.size}")
    if args.patients is not None and args.dataset == "tongue":
        raise SystemExit("--patients applies to cxr14 and cxr11 only")
    start = time.perf_counter()
    common = dict(n=args.n, size=args.size, seed=args.seed, workers=args.workers, progress=True)
    if args.dataset == "cxr14":
        cfg = phantom.Cxr14Config(abnormal_only=args.abnormal_only, label_noise=args.label_noise, contrast=args.contrast,
                                  persistence=args.persistence)
        phantom.generate_cxr14(args.out, patients=args.patients, cfg=cfg, **common)
    elif args.dataset == "cxr11":
        phantom.generate_cxr11(args.out, patients=args.patients, **common)
    else:
        phantom.generate_tongue(args.out, **common)
    seconds = time.perf_counter() - start
    print(f"{args.dataset}: {args.n} images of {args.size}px in {args.out} "
          f"({seconds:.1f} s, {args.n / seconds:.1f} images/s, {args.workers} workers)")
    if args.figure:
        for path in save_figure(phantom.plot_samples(args.out, args.dataset), args.figure, dpi=110, close=True).values():
            print(f"figure: {path}")
    return 0

"""Phantom generation speed: images/s of each generator at 64/128/256 px on 2 worker processes.

    .venv/bin/python benchmarks/bench_phantom.py [--n 200] [--workers 2] [--out results/phantom_generation.md]
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from ctranscnn.phantom import generate_cxr11, generate_cxr14, generate_tongue
from ctranscnn.io import atomic_write_text

GENERATORS = {"cxr14": generate_cxr14, "cxr11": generate_cxr11, "tongue": generate_tongue}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--out", type=Path, default=None, help="write a markdown table here")
    args = parser.parse_args()
    rows = []
    for name, gen in GENERATORS.items():
        for size in args.sizes:
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                gen(Path(tmp), n=args.n, size=size, seed=0, workers=args.workers)
                seconds = time.perf_counter() - start
            rows.append(f"| {name} | {size} | {args.n} | {seconds:.1f} | {args.n / seconds:.1f} |")
            print(rows[-1], flush=True)
    if args.out:
        text = "\n".join([
            "# Phantom generation speed", "",
            f"Command: `.venv/bin/python benchmarks/bench_phantom.py --n {args.n} --workers {args.workers} --out {args.out}`",
            f"Machine: {platform.machine()}, {os.cpu_count()} CPUs visible ({platform.python_version()}); wall-clock "
            "time including PNG/JPEG encoding and the metadata files. The CPUs were shared with other jobs, so "
            "these are lower bounds on speed.", "",
            "| generator | size (px) | images | seconds | images/s |", "|---|---|---|---|---|", *rows, "",
        ])
        atomic_write_text(args.out, text)


if __name__ == "__main__":
    main()

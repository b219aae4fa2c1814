"""Loader throughput (images/s) from the decode cache vs from files, against model training throughput.

NIH-like inputs: 1024 x 1024 8-bit grey PNGs written to a temporary folder (the released size).
For each image size it times one pass of decoding from files, the one-off cache build, several
passes from the cache, and (with --model) forward+backward+AdamW steps of that model at that size.
The issue's target: from cache >= 10x the model's training throughput.

    python benchmarks/bench_data.py --images 64 --sizes 64 128 224 --model ctranscnn_tiny
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ctranscnn.data.dataset import ImageDataset, build_loader
from ctranscnn.data.records import LabelledImages
from ctranscnn.data.transforms import PreprocessConfig


def write_images(folder: Path, n: int, px: int = 1024) -> LabelledImages:
    """Smooth grey X-ray-like images with noise, so PNG compression (and decoding cost) is realistic."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:px, 0:px] / px
    paths = []
    for i in range(n):
        a = 128 + 60 * np.sin(6 * xx + i) * np.cos(4 * yy) + rng.normal(0, 12, (px, px))
        paths.append(folder / f"{i:08d}_000.png")
        Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(paths[-1])
    labels = rng.integers(0, 2, (n, 14)).astype(np.uint8)
    return LabelledImages("bench", "train", [f"c{i}" for i in range(14)], [p.name for p in paths], paths, labels)


def loader_rate(ds: ImageDataset, epochs: int, batch_size: int, workers: int) -> float:
    loader = build_loader(ds, batch_size=batch_size, shuffle=True, num_workers=workers)
    start, seen = time.perf_counter(), 0
    for _ in range(epochs):
        for x, _, _ in loader:
            seen += len(x)
    return seen / (time.perf_counter() - start)


def train_rate(model_name: str, size: int, batch_size: int, steps: int, device: str) -> float:
    from ctranscnn.registry import create_model

    model = create_model(model_name, num_classes=14).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.5, 0.999), weight_decay=0.05)
    x = torch.randn(batch_size, 3, size, size, device=device)
    y = torch.randint(0, 2, (batch_size, 14), device=device).float()

    def step():
        branches = model.forward_head(model.forward_features(x))
        loss = sum(torch.nn.functional.binary_cross_entropy_with_logits(v, y) for v in branches.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up (allocations, cudnn autotune)
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return steps * batch_size / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=48, help="1024 px PNGs to write")
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 224])
    p.add_argument("--epochs", type=int, default=5, help="passes over the cache")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers (0: main process)")
    p.add_argument("--build-workers", type=int, default=2, help="processes decoding into the cache")
    p.add_argument("--model", help="also time training steps of this registered model")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        records = write_images(Path(tmp) / "images", args.images)
        for size in args.sizes:
            cfg = PreprocessConfig(size=size)
            files = loader_rate(ImageDataset(records, cfg, train=True), 1, args.batch_size, args.workers)
            start = time.perf_counter()
            cached = ImageDataset(records, cfg, train=True, cache_dir=Path(tmp) / "cache", workers=args.build_workers)
            build = len(records) / (time.perf_counter() - start)
            cache = loader_rate(cached, args.epochs, args.batch_size, args.workers)
            row = {"size": size, "files_img_s": files, "cache_build_img_s": build, "cache_img_s": cache,
                   "cache_vs_files": cache / files}
            if args.model:
                row["train_img_s"] = train_rate(args.model, size, args.batch_size, args.steps, args.device)
                row["cache_vs_train"] = cache / row["train_img_s"]
            rows.append(row)
            print("  ".join(f"{k} {v:,.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
    meta = {"images": args.images, "source_px": 1024, "batch_size": args.batch_size, "loader_workers": args.workers,
            "model": args.model, "device": args.device, "torch_threads": torch.get_num_threads()}
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()

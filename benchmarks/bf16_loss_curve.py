"""Does bf16 autocast training track fp32? The same model, initial weights and batches, trained both ways.

A learnable synthetic task (each label adds a fixed random pattern to noise images), the authors' loss and
AdamW; writes both loss curves and their gap to results/bf16_loss_curve.json (bench_model.py reports it).

    python benchmarks/bf16_loss_curve.py --model ctranscnn_mini --size 64 --steps 40
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from ctranscnn import create_model
from ctranscnn.io import write_json
from ctranscnn.losses import build_loss

REPO = Path(__file__).resolve().parents[1]


def batches(steps: int, batch: int, size: int, classes: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    patterns = torch.randn(classes, 3, size, size, generator=g)
    out = []
    for _ in range(steps):
        y = (torch.rand(batch, classes, generator=g) < 0.3).float()
        x = torch.randn(batch, 3, size, size, generator=g) + 0.5 * torch.einsum("bc,chwk->bhwk", y, patterns)
        out.append((x, y))
    return out


def curve(model_name: str, data: list, bf16: bool, classes: int, lr: float) -> tuple[list[float], float]:
    torch.manual_seed(0)
    model = create_model(model_name, classes, fast=True).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    loss_fn = build_loss("asl_focal")
    losses = []
    t0 = time.perf_counter()
    for x, y in data:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(model.forward_head(model.forward_features(x)), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses, time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="ctranscnn_mini")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--classes", type=int, default=14)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--out", default=str(REPO / "results" / "bf16_loss_curve.json"))
    args = p.parse_args()

    data = batches(args.steps, args.batch, args.size, args.classes)
    fp32, t32 = curve(args.model, data, False, args.classes, args.lr)
    bf16, t16 = curve(args.model, data, True, args.classes, args.lr)
    gaps = [abs(a - b) / a for a, b in zip(fp32, bf16)]
    tail = max(1, args.steps // 4)
    result = {**vars(args), "threads": torch.get_num_threads(), "torch": torch.__version__,
              "fp32": fp32, "bf16": bf16, "max_rel_gap": max(gaps),
              "fp32_last_quarter_mean": sum(fp32[-tail:]) / tail, "bf16_last_quarter_mean": sum(bf16[-tail:]) / tail,
              "fp32_seconds": t32, "bf16_seconds": t16}
    print(f"{args.model} {args.size}px b{args.batch}, {args.steps} steps: loss fp32 {fp32[0]:.3f} -> {fp32[-1]:.3f}, "
          f"bf16 {bf16[0]:.3f} -> {bf16[-1]:.3f}; max relative gap {max(gaps):.3f}; last-quarter means "
          f"{result['fp32_last_quarter_mean']:.4f} / {result['bf16_last_quarter_mean']:.4f}; "
          f"time {t32:.1f} s / {t16:.1f} s")
    write_json(args.out, result, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

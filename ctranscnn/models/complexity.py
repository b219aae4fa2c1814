"""Parameter counts and forward FLOPs of any registered model."""
from __future__ import annotations

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Total, backbone and head parameters; the head is the `head` submodule (every model API has one)."""
    total = sum(p.numel() for p in model.parameters())
    head = sum(p.numel() for p in model.head.parameters())
    return {"params_total": total, "params_backbone": total - head, "params_head": head}


@torch.no_grad()
def forward_gflops(model: nn.Module, size: int | tuple[int, int] = 224) -> float:
    """Forward GFLOPs (1 multiply-add = 2 FLOPs) for one image, counted by torch's FlopCounterMode:
    convolutions, linear layers and attention matmuls (normalisation and activations are not counted)."""
    h, w = (size, size) if isinstance(size, int) else size
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter:
        model(torch.zeros(1, 3, h, w))
    model.train(was_training)
    return counter.get_total_flops() / 1e9


def model_complexity(model: nn.Module, size: int = 224) -> dict[str, float]:
    """Parameter counts plus `gflops_<size>`."""
    return {**parameter_counts(model), f"gflops_{size}": forward_gflops(model, size)}

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


@torch.no_grad()
def token_grid(model: nn.Module, size: int = 224) -> tuple[int, int] | None:
    """(rows, cols) of the tokens a model's transformer attends over at `size` px, read from its patch embedding's
    output in one forward pass: CTransCNN/Conformer's transformer branch (`backbone.trans_patch_conv`, N C H W),
    timm ViT/DeiT/Swin (`trunk.patch_embed`; Swin's first stage, attended in windows). None without one (CNNs)."""
    embed = getattr(getattr(model, "backbone", None), "trans_patch_conv", None)
    channels_first = embed is not None
    embed = embed if embed is not None else getattr(getattr(model, "trunk", None), "patch_embed", None)
    if embed is None:
        return None
    shapes: list[tuple[int, ...]] = []
    hook = embed.register_forward_hook(lambda module, inputs, out: shapes.append(tuple(out.shape)))
    was_training = model.training
    try:
        model.eval()(torch.zeros(1, 3, size, size))
    finally:
        hook.remove()
        model.train(was_training)
    shape = shapes[0]
    if channels_first:
        return shape[2], shape[3]
    if len(shape) == 4:  # timm N H W C
        return shape[1], shape[2]
    ph, pw = embed.patch_size  # flattened N L C: the patch grid of the input
    return size // ph, size // pw

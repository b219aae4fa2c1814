"""Grad-CAM (Selvaraju et al., 2017) per label for every registered model, and the paper-style figure.

Own implementation, numerically the same as pytorch-grad-cam's `GradCAM` (tests/test_gradcam.py checks it against
that package): for each chosen layer, cam = ReLU(sum_k mean_xy(dz/dA_k) * A_k), min-max scaled per image and
resized (bilinear) to the image size; several layers are averaged and scaled again. It exists because CTransCNN's
blocks return (features, side output) tuples and its logits come from two branches, which the package's hooks
and single-output assumption do not handle.

Which layer explains which branch (`cam_layers`):
  CTransCNN 'cnn'   : output of the last coupled block's CNN path (the map the CNN head averages), stride 32.
  CTransCNN 'trans' : the last transformer layer's first LayerNorm output, class token dropped, patch tokens
                      reshaped to the token grid. The head reads only the final class token, so gradients reach
                      no patch token at the layer's output; its input is where the class token reads the patches.
  ResNet family, ConvNeXt, RepVGG: last stage.  ViT/DeiT: last block's norm1 (same reason as 'trans').
  Swin: final norm (B x H x W x C; the head averages every position).
`target` picks the logit explained: 'fused' (what `forward` returns) or one branch; by default the 'fused' map
uses every branch's layer, a branch map that branch's layer.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models.swin_transformer import SwinTransformer
from timm.models.vision_transformer import VisionTransformer

from ctranscnn.io import save_figure
from ctranscnn.models.baselines import TimmClassifier
from ctranscnn.models.ctranscnn import CTransCNN, token_grid


@dataclass(frozen=True)
class CamLayer:
    """A module whose output Grad-CAM reads, and how to turn that output into B x C x h x w.

    layout: 'nchw', 'nhwc' or 'tokens' (B x (prefix + h*w) x D; the first `prefix` tokens are dropped and the
    rest reshaped to grid(H, W) for an H x W input). A tuple output is read at its first element.
    """

    module: nn.Module
    layout: str = "nchw"
    prefix: int = 0
    grid: Callable[[int, int], tuple[int, int]] | None = None

    def to_map(self, t: torch.Tensor, image_hw: tuple[int, int]) -> torch.Tensor:
        if self.layout == "nchw":
            return t
        if self.layout == "nhwc":
            return t.permute(0, 3, 1, 2)
        h, w = self.grid(*image_hw)
        tokens = t[:, self.prefix:]
        if tokens.shape[1] != h * w:
            raise ValueError(f"{tokens.shape[1]} patch tokens do not fill a {h} x {w} grid")
        return tokens.transpose(1, 2).reshape(t.shape[0], -1, h, w)


def cam_layers(model: nn.Module) -> dict[str, CamLayer]:
    """The Grad-CAM layer of each branch of a registered model (see the module docstring)."""
    if isinstance(model, CTransCNN):
        bb = model.backbone
        grid = lambda h, w: token_grid(h, w, bb.cfg.patch_size)  # noqa: E731
        return {
            "cnn": CamLayer(bb.blocks()[-1]),
            "trans": CamLayer(bb.blocks()[-1].trans_block.ln1, "tokens", prefix=1, grid=grid),
        }
    if isinstance(model, TimmClassifier):
        t = model.trunk
        if isinstance(t, VisionTransformer):
            p = t.patch_embed.patch_size
            grid = lambda h, w: (h // p[0], w // p[1])  # noqa: E731
            return {"main": CamLayer(t.blocks[-1].norm1, "tokens", prefix=t.num_prefix_tokens, grid=grid)}
        if isinstance(t, SwinTransformer):
            return {"main": CamLayer(t.norm, "nhwc")}
        return {"main": CamLayer(t.layer4 if hasattr(t, "layer4") else t.stages[-1])}
    raise TypeError(f"no Grad-CAM layers known for {type(model).__name__}")


def _scale(cam: torch.Tensor) -> torch.Tensor:
    """Per-image min-max to [0, 1] (an all-equal map becomes 0), as pytorch-grad-cam does."""
    flat = cam.flatten(1)
    flat = flat - flat.min(dim=1, keepdim=True).values
    return (flat / (1e-7 + flat.max(dim=1, keepdim=True).values)).view_as(cam)


def gradcam_maps(
    model: nn.Module,
    images: torch.Tensor,
    class_index: int | Sequence[int],
    target: str = "fused",
    layers: Sequence[str] | None = None,
) -> np.ndarray:
    """Grad-CAM maps, float32 B x H x W in [0, 1] at the images' size.

    images: B x 3 x H x W, normalised like the model's training input. class_index: one label for all images
    or one per image. target: 'fused' or a branch name (model.branch_names) whose logit is explained.
    layers: branch names whose Grad-CAM layers are read (default: all for 'fused', else the target's own).
    The model runs in eval mode (restored afterwards); parameter gradients are left untouched.
    """
    if target != "fused" and target not in model.branch_names:
        raise ValueError(f"target must be 'fused' or one of {model.branch_names}, got {target!r}")
    layers = tuple(layers or (model.branch_names if target == "fused" else (target,)))
    available = cam_layers(model)
    unknown = [b for b in layers if b not in available]
    if unknown:
        raise ValueError(f"unknown layer branch(es) {unknown}; known: {tuple(available)}")
    chosen = [available[b] for b in layers]
    b, _, h, w = images.shape
    idx = torch.as_tensor(class_index, dtype=torch.long, device=images.device)
    if idx.ndim > 1 or idx.numel() not in (1, b):
        raise ValueError(f"class_index must be one int or {b} ints, got {class_index}")
    idx = idx.expand(b)
    if idx.min() < 0 or idx.max() >= model.num_classes:
        raise ValueError(f"class_index {class_index} outside 0..{model.num_classes - 1}")

    acts: dict[int, torch.Tensor] = {}

    def keep(i: int):
        def hook(_module, _inputs, output):
            if i in acts:
                raise RuntimeError(f"Grad-CAM layer {layers[i]!r} ran twice in one forward pass")
            acts[i] = output[0] if isinstance(output, tuple) else output
        return hook

    handles = [cl.module.register_forward_hook(keep(i)) for i, cl in enumerate(chosen)]
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            branches = model.forward_head(model.forward_features(images))
            logits = model.fuse_logits(branches) if target == "fused" else branches[target]
            score = logits.gather(1, idx[:, None]).sum()  # images are independent in eval mode
            grads = torch.autograd.grad(score, [acts[i] for i in range(len(chosen))], allow_unused=True)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)

    cams = []
    for i, cl in enumerate(chosen):
        g = torch.zeros_like(acts[i]) if grads[i] is None else grads[i]  # layer does not reach this logit
        a, g = cl.to_map(acts[i].detach(), (h, w)), cl.to_map(g, (h, w))
        cam = F.relu((g.mean(dim=(2, 3), keepdim=True) * a).sum(dim=1, keepdim=True))
        cams.append(F.interpolate(_scale(cam), size=(h, w), mode="bilinear", align_corners=False))
    return _scale(torch.stack(cams).mean(dim=0))[:, 0].float().cpu().numpy()


def _label_text(names: Sequence[str]) -> str:
    return ", ".join(names) if names else "none"


def plot_gradcam(
    images: torch.Tensor,
    labels: np.ndarray,
    models: dict[str, nn.Module],
    classes: Sequence[str],
    display: Sequence[np.ndarray] | None = None,
    thr: float = 0.5,
) -> plt.Figure:
    """The paper-style figure: one row per image (image with its true labels), one column per model with its
    fused Grad-CAM for the explained label (the model's highest-scoring true label, its highest-scoring label
    when the image has none), that label's predicted probability, and its predicted labels (probability >= thr).
    Drawn at the width of a two-column page (7.16 in) with 6 pt text and the map's colour scale.

    images: B x 3 x H x W model input; labels: B x C multi-hot; display: optional B images (H x W or H x W x 3)
    to draw under the maps, else each input is min-max scaled for display.
    """
    labels = np.asarray(labels)
    if labels.shape != (len(images), len(classes)):
        raise ValueError(f"labels have shape {labels.shape}, expected {(len(images), len(classes))}")
    if display is None:
        display = [_scale(x[None].mean(dim=1, keepdim=True))[0, 0].cpu().numpy() for x in images]
    n, m = len(images), len(models)
    side = 7.16 / (m + 1.4)  # room for the colour bar
    fig, axes = plt.subplots(n, m + 1, figsize=(7.16, (side + 0.45) * n), squeeze=False, layout="constrained")
    for r in range(n):
        axes[r, 0].imshow(display[r], cmap="gray")
        axes[r, 0].set_title("input\ntrue: " + _label_text([classes[k] for k in np.flatnonzero(labels[r])]),
                             fontsize=6)
    overlay = None
    for c, (name, model) in enumerate(models.items(), start=1):
        model.eval()
        with torch.no_grad():
            prob = torch.sigmoid(model(images)).cpu().numpy()
        pool = np.where(labels.any(axis=1, keepdims=True), np.where(labels > 0, prob, -np.inf), prob)
        explained = pool.argmax(axis=1)
        maps = gradcam_maps(model, images, explained.tolist(), target="fused")
        for r in range(n):
            ax = axes[r, c]
            ax.imshow(display[r], cmap="gray")
            overlay = ax.imshow(maps[r], cmap="jet", alpha=0.45, vmin=0, vmax=1)
            k = explained[r]
            predicted = [classes[j] for j in np.flatnonzero(prob[r] >= thr)]
            pred = textwrap.fill(f"pred: {_label_text(predicted)}", 30)  # long label lists stay in the panel
            ax.set_title(f"{name}\nmap: {classes[k]} (p={prob[r, k]:.2f})\n{pred}", fontsize=6)
    for ax in axes.flat:
        ax.axis("off")
    if overlay is not None:
        scale = plt.cm.ScalarMappable(norm=overlay.norm, cmap=overlay.cmap)  # opaque, unlike the overlay
        bar = fig.colorbar(scale, ax=axes, shrink=0.8, aspect=30, pad=0.02)
        bar.set_label("Grad-CAM (scaled to [0, 1] per image)", fontsize=6)
        bar.ax.tick_params(labelsize=6)
    return fig


def gradcam_figure(
    images: torch.Tensor,
    labels: np.ndarray,
    models: dict[str, nn.Module],
    classes: Sequence[str],
    path_stem: str | Path,
    display: Sequence[np.ndarray] | None = None,
    thr: float = 0.5,
) -> dict[str, Path]:
    """`plot_gradcam`, saved as `<path_stem>.png` and `.pdf`."""
    return save_figure(plot_gradcam(images, labels, models, classes, display, thr), path_stem, close=True)

"""BN folding for inference: every BatchNorm of a CTransCNN/Conformer folded into the convolution before it.

Owns the folded inference modules and `fold_for_inference(model)`, the one walker that swaps them in. It accepts
any model: one with nothing to fold (the timm baselines) comes back unchanged. The folded copy's outputs equal
`model.eval()`'s up to float rounding (tests/test_fast_paths.py) at a fraction of the memory traffic. Its modules
differ (fewer convs, with biases), so its state dict is not the authors' layout: keep the original model for
checkpoints.

Per MBR block (spec §1.3) the folds are: bn1 -> conv1; the 3x3 conv2 followed by 2*bn2 + conv_64_16 ->
one 3x3 conv (the 1x1 map k*diag(bn2 scale) + W_64_16 composed into conv2's kernel); bn3 -> conv3; and
the two shortcuts (residual_conv+residual_bn, conv_identity+bn_out, or the identity) -> one 1x1 conv.
C2T's conv_project -> conv1 -> bn1 chain is one c->D conv; T2C's conv_project+bn and the stem's conv+bn fold.
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ctranscnn.models.ctranscnn import (C2T, T2C, Attention, CTransCNNBackbone, MBRBlock, class_token_first,
                                        pool_tokens, upsample_map)


def bn_scale_shift(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BN as y = scale * x + shift, per channel."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


def conv_from(weight: torch.Tensor, bias: torch.Tensor, stride: int = 1) -> nn.Conv2d:
    cout, cin, k, _ = weight.shape
    conv = nn.Conv2d(cin, cout, k, stride, k // 2, bias=True)
    conv.weight.data.copy_(weight)
    conv.bias.data.copy_(bias)
    return conv


def fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    scale, shift = bn_scale_shift(bn)
    bias = shift if conv.bias is None else shift + conv.bias * scale
    return conv.weight * scale[:, None, None, None], bias


class FoldedMBR(nn.Module):
    """MBR block as conv1 -> 3x3 conv2 -> conv3 plus one shortcut conv, all with biases."""

    def __init__(self, block: MBRBlock):
        super().__init__()
        self.conv1 = conv_from(*fold(block.conv1, block.bn1))
        # conv2's output u feeds k*bn2(u) (+ conv_64_16(u)): a 1x1 map M applied after the 3x3 kernel.
        scale, shift = bn_scale_shift(block.bn2)
        k = 2.0 if block.mbr and block.double_bn2 else 1.0
        mix = torch.diag(k * scale)
        if block.mbr:
            mix = mix + block.conv_64_16.weight.flatten(1)
        stride = block.conv2.stride[0]
        self.conv2 = conv_from(torch.einsum("om,mikl->oikl", mix, block.conv2.weight), k * shift, stride)
        self.conv3 = conv_from(*fold(block.conv3, block.bn3))
        parts = []
        if block.with_residual_conv:
            parts.append(fold(block.residual_conv, block.residual_bn))
        elif block.mbr:  # the identity shortcut becomes part of the 1x1 conv
            eye = torch.eye(block.conv_identity.in_channels)[:, :, None, None]
            parts.append((eye, torch.zeros(eye.shape[0])))
        if block.mbr:
            parts.append(fold(block.conv_identity, block.bn_out))
        self.shortcut = conv_from(sum(w for w, _ in parts), sum(b for _, b in parts), stride) if parts else None

    def forward(self, x: torch.Tensor, t2c_map: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        a = F.relu(self.conv1(x))
        x2 = F.relu(self.conv2(a if t2c_map is None else a + t2c_map))
        y = self.conv3(x2)
        y = y + (x if self.shortcut is None else self.shortcut(x))
        return F.relu(y), x2


class FoldedC2T(nn.Module):
    """C2T as in its fast path (1x1 convs as Linears on the pooled tokens), with conv_project -> conv1 -> bn1 as
    one c->D conv: tokens = Wp pool(x) + bp (+ W2 pool(sigmoid(gate(x))) + b2 with IIM)."""

    def __init__(self, c2t: C2T):
        super().__init__()
        self.down = c2t.down
        self.project = nn.Linear(c2t.conv_project.in_channels, c2t.conv_project.out_channels)
        self.project.weight.data.copy_(c2t.conv_project.weight.flatten(1))
        self.project.bias.data.copy_(c2t.conv_project.bias)
        self.ln = c2t.ln
        self.gate = self.mix = None
        if c2t.iim:
            w1 = c2t.conv1.weight.flatten(1)
            weight = (w1 @ c2t.conv_project.weight.flatten(1))[:, :, None, None]
            bias = w1 @ c2t.conv_project.bias + c2t.conv1.bias
            scale, shift = bn_scale_shift(c2t.bn1)
            self.gate = conv_from(weight * scale[:, None, None, None], bias * scale + shift)
            self.mix = nn.Linear(c2t.conv2.in_channels, c2t.conv2.out_channels)
            self.mix.weight.data.copy_(c2t.conv2.weight.flatten(1))
            self.mix.bias.data.copy_(c2t.conv2.bias)

    def forward(self, x: torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
        p = self.project(pool_tokens(x, self.down))
        if self.gate is not None:
            p = p + self.mix(pool_tokens(self.gate(x).sigmoid_(), self.down))  # in place: a B x D x H x W map
        return class_token_first(p, x_t, self.ln)


class FoldedT2C(nn.Module):
    """T2C with its BN folded into the projection, applied as a Linear on the tokens (T2C's fast path)."""

    def __init__(self, t2c: T2C):
        super().__init__()
        self.up = t2c.up
        weight, bias = fold(t2c.conv_project, t2c.bn)
        self.project = nn.Linear(weight.shape[1], weight.shape[0])
        self.project.weight.data.copy_(weight.flatten(1))
        self.project.bias.data.copy_(bias)
        self.iim = t2c.iim
        if t2c.iim:
            self.conv2, self.conv3 = t2c.conv2, t2c.conv3

    def forward(self, x_t: torch.Tensor, h: int, w: int) -> torch.Tensor:
        r = F.relu(self.project(x_t[:, 1:])).transpose(1, 2).reshape(x_t.shape[0], -1, h, w)
        return upsample_map(r, self.up, (self.conv2, self.conv3) if self.iim else None)


def _fold_stem(backbone: CTransCNNBackbone) -> CTransCNNBackbone:
    """The stem's conv1 + bn1 as one conv, in place (the backbone's other children are folded by the walker)."""
    backbone.conv1 = conv_from(*fold(backbone.conv1, backbone.bn1), stride=2)
    backbone.bn1 = nn.Identity()
    return backbone


def _fast_attention(attention: Attention) -> Attention:
    attention.fast = True  # same parameters; the one-pass softmax (exact up to rounding)
    return attention


# How each foldable module type becomes its inference form (a new module, or the same one changed in place).
FOLDS: dict[type, Callable[[nn.Module], nn.Module]] = {
    MBRBlock: FoldedMBR, C2T: FoldedC2T, T2C: FoldedT2C, CTransCNNBackbone: _fold_stem, Attention: _fast_attention,
}


@torch.no_grad()
def fold_for_inference(model: nn.Module) -> nn.Module:
    """An eval-mode copy with every foldable module replaced by its folded form, gradients off; `model` is left
    untouched. A model with nothing to fold (every baseline) is returned as it is."""
    if not any(type(m) in FOLDS for m in model.modules()):
        return model
    folded = copy.deepcopy(model).eval()
    for parent in list(folded.modules()):  # listed first: replacing children must not change what is visited
        for name, child in list(parent.named_children()):
            if type(child) in FOLDS:
                setattr(parent, name, FOLDS[type(child)](child))
    if type(folded) in FOLDS:
        folded = FOLDS[type(folded)](folded)
    return folded.eval().requires_grad_(False)

"""Inference-only CTransCNN: every BatchNorm folded into the convolution before it.

`fuse_for_inference(model)` returns an eval-mode copy whose outputs equal `model.eval()`'s up to float
rounding (tests/test_fast_paths.py) at a fraction of the memory traffic. Its modules differ (fewer convs,
with biases), so its state dict is not the authors' layout: keep the original model for checkpoints.

Per MBR block (spec §1.3) the folds are: bn1 -> conv1; the 3x3 conv2 followed by 2*bn2 + conv_64_16 ->
one 3x3 conv (the 1x1 map k*diag(bn2 scale) + W_64_16 composed into conv2's kernel); bn3 -> conv3; and
the two shortcuts (residual_conv+residual_bn, conv_identity+bn_out, or the identity) -> one 1x1 conv.
C2T's conv_project -> conv1 -> bn1 chain is one c->D conv; T2C's conv_project+bn and the stem's conv+bn fold.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from ctranscnn.models.ctranscnn import C2T, T2C, Attention, CTransCNN, MBRBlock


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


class FusedMBR(nn.Module):
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

    def forward(self, x: torch.Tensor, fusion: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        a = F.relu(self.conv1(x))
        x2 = F.relu(self.conv2(a if fusion is None else a + fusion))
        y = self.conv3(x2)
        y = y + (x if self.shortcut is None else self.shortcut(x))
        return F.relu(y), x2


class FusedC2T(C2T):
    """C2T's fast path (pooled tokens, Linears) with conv_project -> conv1 -> bn1 as one c->D conv."""

    def __init__(self, c2t: C2T):
        nn.Module.__init__(self)
        self.iim, self.down, self.fast = c2t.iim, c2t.down, True
        self.conv_project, self.sample_pooling, self.ln = c2t.conv_project, c2t.sample_pooling, c2t.ln
        if c2t.iim:
            w1 = c2t.conv1.weight.flatten(1)
            weight = (w1 @ c2t.conv_project.weight.flatten(1))[:, :, None, None]
            bias = w1 @ c2t.conv_project.bias + c2t.conv1.bias
            scale, shift = bn_scale_shift(c2t.bn1)
            self.gate = conv_from(weight * scale[:, None, None, None], bias * scale + shift)
            self.conv2 = c2t.conv2

    def tokens_fast(self, x: torch.Tensor) -> torch.Tensor:
        p = F.linear(self.pooled_tokens(x), self.conv_project.weight.flatten(1), self.conv_project.bias)
        if self.iim:
            gate = self.pooled_tokens(self.gate(x).sigmoid_())  # in place: a B x 384 x H x W map
            p = p + F.linear(gate, self.conv2.weight.flatten(1), self.conv2.bias)
        return p


class FusedT2C(T2C):
    """T2C's fast path with its BN folded into the projection."""

    def __init__(self, t2c: T2C):
        nn.Module.__init__(self)
        self.iim, self.up, self.fast = t2c.iim, t2c.up, True
        self.conv_project = conv_from(*fold(t2c.conv_project, t2c.bn))
        self.bn = nn.Identity()
        if t2c.iim:
            self.conv2, self.conv3 = t2c.conv2, t2c.conv3


@torch.no_grad()
def fuse_for_inference(model: CTransCNN) -> CTransCNN:
    """An eval-mode copy with all BNs folded and the fast attention path on; `model` is left untouched."""
    fused = copy.deepcopy(model).eval()
    replace = {MBRBlock: FusedMBR, C2T: FusedC2T, T2C: FusedT2C}
    for parent in list(fused.modules()):
        for name, child in list(parent.named_children()):
            if type(child) in replace:
                setattr(parent, name, replace[type(child)](child))
            elif isinstance(child, Attention):
                child.fast = True
    backbone = fused.backbone
    backbone.conv1 = conv_from(*fold(backbone.conv1, backbone.bn1), stride=2)
    backbone.bn1 = nn.Identity()
    return fused.eval().requires_grad_(False)

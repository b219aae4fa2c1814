"""The fast gate: C2T's gate for training at a fraction of the memory traffic (switch `fast_c2t_gate`; spec §1.4).

Owns the two exact rewrites below and nothing else; C2T (models/ctranscnn.py) calls `fast_gate_tokens` when the
switch is on and its BN is in training mode (in eval mode BN is already an affine map).

The faithful gate is AvgPool(sigmoid(BN(W x + b))) with W = conv1 . conv_project (c -> D, D = 384) at the full CNN
resolution: in stage 1 a B x 384 x 56 x 56 tensor, 24x the size of its 16-channel input, written and read some
fifteen times per step (conv, BN's two passes, sigmoid, pooling and their backward passes). Two exact rewrites:

1. Training-mode BN statistics of z = W x + b follow from the input's moments: mean(z) = W mean(x) + b and
   var(z) = diag(W Cov(x) W^T), with Cov(x) a c x c matrix. BN then is a per-channel affine map, folded into the
   conv: BN(W x + b) = W' x + b'. Autograd differentiates through mean(x) and Cov(x), so gradients equal BN's
   own (which also flow through the batch statistics). Running statistics are updated as nn.BatchNorm2d does.
2. sigmoid + AvgPool run in one autograd Function that keeps only x, W' and b' and recomputes the full-resolution
   map in backward (one c -> D conv, ~0.1% of the step's FLOPs), with every full-resolution step in place.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def folded_gate_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                     norm: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(W', b') with BN(conv1x1(x; weight, bias)) = conv1x1(x; W', b') in training mode; updates norm's running
    statistics exactly as its own forward would. weight: D x c, bias: D."""
    n = x.numel() // x.shape[1]
    with torch.autocast(x.device.type, enabled=False):  # statistics in fp32 also under autocast, as BN keeps them
        xs = x.transpose(0, 1).reshape(x.shape[1], -1).float()  # c x N (a copy of the small input)
        mean_x = xs.mean(dim=1)
        centred = xs - mean_x[:, None]
        cov = centred @ centred.t() / n  # biased, as BN normalises with the biased variance
        weight, bias = weight.float(), bias.float()  # autocast may have produced them in bf16
        mean_z = weight @ mean_x + bias
        var_z = ((weight @ cov) * weight).sum(dim=1)
    if norm.track_running_stats:
        with torch.no_grad():
            norm.num_batches_tracked.add_(1)
            m = norm.momentum if norm.momentum is not None else 1.0 / float(norm.num_batches_tracked)
            norm.running_mean.mul_(1 - m).add_(mean_z.detach(), alpha=m)
            norm.running_var.mul_(1 - m).add_(var_z.detach() * (n / max(n - 1, 1)), alpha=m)
    scale = torch.rsqrt(var_z + norm.eps)
    if norm.affine:
        scale = scale * norm.weight
    shift = (bias - mean_z) * scale + (norm.bias if norm.affine else 0.0)
    return weight * scale[:, None], shift


class SigmoidAvgPool(torch.autograd.Function):
    """AvgPool_k(sigmoid(conv1x1(x; W, b))) (non-overlapping k x k windows, floor mode), recomputed in backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, k: int) -> torch.Tensor:
        # Under autocast the conv runs in the autocast dtype, as the plain conv would; backward (which runs
        # outside autocast) repeats it in that dtype and returns gradients in the inputs' own dtypes.
        device = x.device.type
        ctx.dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype
        ctx.save_for_backward(x, weight, bias)
        ctx.k = k
        with torch.autocast(device, enabled=False):
            s = SigmoidAvgPool.conv(x, weight, bias, ctx.dtype).sigmoid_()
            return F.avg_pool2d(s, k) if k > 1 else s

    @staticmethod
    def conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return F.conv2d(x.to(dtype), weight.to(dtype)[:, :, None, None], bias.to(dtype))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x_in, weight_in, bias_in = ctx.saved_tensors
        k, dtype = ctx.k, ctx.dtype
        x, weight, grad = x_in.to(dtype), weight_in.to(dtype), grad.to(dtype)
        dz = SigmoidAvgPool.conv(x, weight, bias_in, dtype).sigmoid_()
        dz.addcmul_(dz, dz, value=-1.0)  # sigmoid'(z) = s (1 - s), in place
        if k == 1:
            dz.mul_(grad)
        else:  # AvgPool's backward: each pixel of a window gets grad / k^2; rows/columns past the windows get 0
            h, w = grad.shape[-2:]
            dz[:, :, h * k:].zero_()
            dz[:, :, :, w * k:].zero_()
            window = dz[:, :, :h * k, :w * k].unflatten(3, (w, k)).unflatten(2, (h, k))  # a view: B D h k w k
            window.mul_(grad[:, :, :, None, :, None] * (1.0 / (k * k)))
        d = dz.shape[1]
        dx = dw = db = None
        if dz.is_contiguous(memory_format=torch.channels_last) and x.is_contiguous(memory_format=torch.channels_last):
            rows, xr = dz.permute(0, 2, 3, 1).reshape(-1, d), x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])  # views
            if ctx.needs_input_grad[0]:
                dx = (rows @ weight).view(x.shape[0], x.shape[2], x.shape[3], -1).permute(0, 3, 1, 2)
            if ctx.needs_input_grad[1]:
                dw = rows.t() @ xr
        else:
            cols, xc = dz.flatten(2), x.flatten(2)  # B x D x HW, B x c x HW
            if ctx.needs_input_grad[0]:
                dx = torch.matmul(weight.t(), cols).view_as(x)
            if ctx.needs_input_grad[1]:
                dw = torch.bmm(cols, xc.transpose(1, 2)).sum(dim=0)
        if ctx.needs_input_grad[2]:
            db = dz.sum(dim=(0, 2, 3))
        cast = lambda g, like: None if g is None else g.to(like.dtype)  # noqa: E731
        return cast(dx, x_in), cast(dw, weight_in), cast(db, bias_in), None


def fast_gate_tokens(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, norm: nn.BatchNorm2d,
                      down: int) -> torch.Tensor:
    """AvgPool_down(sigmoid(norm(conv1x1(x; weight, bias)))) for a BN in training mode, as B x D x h x w."""
    w, b = folded_gate_conv(x, weight, bias, norm)
    return SigmoidAvgPool.apply(x, w, b, down)

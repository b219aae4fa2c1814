"""The fast C2T gate (ctranscnn/models/c2t_gate.py) against the plain composition it replaces:
AvgPool_k(sigmoid(BatchNorm2d(conv1x1(x)))) in training mode, for both memory formats, pooling factors 1/2/4,
sizes that the windows do not tile, and BN with and without momentum."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from ctranscnn.models.c2t_gate import fast_gate_tokens


def reference(x, weight, bias, norm, k):
    s = torch.sigmoid(norm(F.conv2d(x, weight[:, :, None, None], bias)))
    return F.avg_pool2d(s, k) if k > 1 else s


def rel(a: torch.Tensor, b: torch.Tensor, floor: float = 1e-30) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(floor)).item()


@pytest.mark.parametrize("k,h,w", [(1, 7, 5), (2, 10, 12), (4, 16, 16), (4, 18, 21)])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_fast_gate_equals_conv_bn_sigmoid_pool(k: int, h: int, w: int, channels_last: bool, momentum) -> None:
    torch.manual_seed(0)
    c, d = 6, 20
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(3, c, h, w).contiguous(memory_format=fmt)
    weight, bias = torch.randn(d, c), torch.randn(d)
    norm = nn.BatchNorm2d(d, momentum=momentum)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
        norm.running_mean.uniform_(-1, 1)
    norm_ref = copy.deepcopy(norm).double()  # the reference runs in float64: an oracle free of fp32 noise
    leaves = [t.requires_grad_() for t in (x, weight, bias)]
    ref_leaves = [t.detach().double().requires_grad_() for t in leaves]
    probe = torch.randn(3, d, h // k, w // k)
    for _ in range(2):  # twice: running statistics accumulate (and momentum=None averages)
        out = fast_gate_tokens(*leaves, norm, k)
        ref = reference(*ref_leaves, norm_ref, k)
    assert out.shape == ref.shape and rel(out.double(), ref) < 1e-5
    (out * probe).sum().backward()
    (ref * probe.double()).sum().backward()
    # the conv bias's gradient is exactly 0 (BN removes the mean), so each gradient is compared relative to at
    # least 1e-4 of the largest one
    floor = 1e-4 * max(t.grad.abs().max().item() for t in ref_leaves)
    for mine, theirs in zip(leaves, ref_leaves):
        assert rel(mine.grad.double(), theirs.grad, floor) < 1e-5
    for p, q in zip(norm.parameters(), norm_ref.parameters()):
        assert rel(p.grad.double(), q.grad) < 1e-5
    for (name, a), b in zip(norm.state_dict().items(), norm_ref.state_dict().values()):
        assert rel(a.double(), b.double()) < 1e-5, name


def test_fast_gate_under_bf16_autocast_tracks_fp32() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    weight = torch.randn(12, 4, requires_grad=True)
    bias = torch.zeros(12, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fast_gate_tokens(x, weight, bias, nn.BatchNorm2d(12), 2)
    out.float().sum().backward()
    assert out.dtype == torch.bfloat16 and x.grad.dtype == weight.grad.dtype == torch.float32
    assert rel(out.float(), fast_gate_tokens(x, weight, bias, nn.BatchNorm2d(12), 2)) < 2e-2

"""Losses against independent numpy re-statements of the authors' formulas (spec section 3)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ctranscnn.losses import LossConfig, asymmetric_loss, build_loss

# Logits span the clamp at eps (p < 1e-8 for z < -18.4) and the clip (p <= 0.05 for z <= -2.94).
Z = np.array([[-30.0, -3.5, -0.4, 0.0, 1.2], [2.5, 0.3, -1.7, 20.0, -0.05], [0.8, -2.0, 3.0, -6.0, 0.6]])
Y = np.array([[1, 0, 1, 0, 1], [0, 1, 1, 0, 0], [1, 1, 0, 0, 1]], dtype=np.float64)


def asl_ref(z, y, gamma_pos=0.0, gamma_neg=4.0, clip=0.05, eps=1e-8):
    """mmcls asymmetric_loss, reduction sum / B, written out in numpy."""
    p = 1 / (1 + np.exp(-z))
    pt = np.minimum(1 - p + clip, 1) * (1 - y) + p * y if clip > 0 else (1 - p) * (1 - y) + p * y
    w = (1 - pt) ** (gamma_pos * y + gamma_neg * (1 - y))
    return np.sum(-np.log(np.maximum(pt, eps)) * w) / len(z)


def bce_elem(z, y):
    return np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))  # -y log p - (1-y) log(1-p), stably


def focal_ref(z, y, gamma=2.0, alpha=0.25):
    p = 1 / (1 + np.exp(-z))
    pt = (1 - p) * y + p * (1 - y)
    return np.sum((alpha * y + (1 - alpha) * (1 - y)) * pt**gamma * bce_elem(z, y)) / len(z)


def bce_ref(z, y):
    return np.sum(bce_elem(z, y)) / len(z)


def t(a):
    return torch.tensor(a, dtype=torch.float64)


def test_authors_objective_matches_restatement():
    z2 = Z[::-1] * 0.7  # a second, different branch
    got = build_loss()({"cnn": t(Z), "trans": t(z2)}, t(Y)).item()
    want = 0.25 * (asl_ref(Z, Y) + focal_ref(Z, Y) + asl_ref(z2, Y) + focal_ref(z2, Y))
    assert got == pytest.approx(want, rel=1e-12)
    # float32 (the training dtype) stays within rounding of the float64 value
    got32 = build_loss()({"cnn": torch.tensor(Z, dtype=torch.float32), "trans": torch.tensor(z2, dtype=torch.float32)},
                         torch.tensor(Y, dtype=torch.float32)).item()
    assert got32 == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("name, ref", [("asl", asl_ref), ("focal", focal_ref), ("bce", bce_ref)])
def test_single_terms_and_bare_tensor(name, ref):
    loss = build_loss(name)
    assert loss(t(Z), t(Y)).item() == pytest.approx(ref(Z, Y), rel=1e-12)
    two = loss({"a": t(Z), "b": t(2 * Z)}, t(Y)).item()
    assert two == pytest.approx((ref(Z, Y) + ref(2 * Z, Y)) / 2, rel=1e-12)


def test_asl_clamps_log_at_eps():
    # a positive at z = -30 has p ~ 1e-13: the authors' loss is -log(1e-8), not 30
    per_elem = asymmetric_loss(t([[-30.0]]), t([[1.0]]))
    assert per_elem.item() == pytest.approx(-math.log(1e-8), rel=1e-12)


def test_asl_without_focusing_or_clip_is_bce():
    z, y = Z.clip(-15, 15), Y  # inside the eps clamp, where ASL(0, 0, 0) and BCE coincide exactly
    cfg = LossConfig(name="asl", gamma_pos=0.0, gamma_neg=0.0, clip=0.0)
    got = build_loss(cfg)(t(z), t(y)).item()
    assert got == pytest.approx(bce_ref(z, y), rel=1e-12)
    assert got == pytest.approx(F.binary_cross_entropy_with_logits(t(z), t(y), reduction="sum").item() / 3, rel=1e-12)


def test_focal_without_focusing_is_half_bce():
    cfg = LossConfig(name="focal", focal_gamma=0.0, focal_alpha=0.5)
    assert build_loss(cfg)(t(Z), t(Y)).item() == pytest.approx(0.5 * bce_ref(Z, Y), rel=1e-12)


def test_values_at_initialisation():
    # p = 0.5 everywhere; per sample ASL = 0.69 n+ + 0.0245 n-, FL = 0.043 n+ + 0.13 n- (spec section 3)
    y = torch.tensor([[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 0.0]])
    n_pos, n_neg = y.sum().item() / 4, (1 - y).sum().item() / 4
    z = torch.zeros_like(y)
    asl = build_loss("asl")(z, y).item()
    focal = build_loss("focal")(z, y).item()
    ln2 = math.log(2)
    assert asl == pytest.approx(ln2 * n_pos + -math.log(0.55) * 0.45**4 * n_neg, rel=1e-6)
    assert focal == pytest.approx(0.25 * 0.25 * ln2 * n_pos + 0.75 * 0.25 * ln2 * n_neg, rel=1e-6)
    assert asl == pytest.approx(0.69 * n_pos + 0.0245 * n_neg, abs=0.01)
    assert focal == pytest.approx(0.043 * n_pos + 0.13 * n_neg, abs=0.01)
    assert build_loss()({"cnn": z, "trans": z}, y).item() == pytest.approx((asl + focal) / 2, rel=1e-6)


def test_gradient_flows_through_asl_weight():
    z = t(Z[1:2]).requires_grad_()  # one sample, negatives with p > clip and p < clip
    y = t(Y[1:2])
    build_loss("asl")(z, y).backward()
    # analytic gradient of the non-detached loss: positives -(1-p); negatives, u = max(p-clip, 0),
    # d/dz [-log(1-u) u^4] = p(1-p) [u^4/(1-u) - 4 u^3 log(1-u)] (zero where p <= clip)
    p = 1 / (1 + np.exp(-Z[1]))
    u = np.maximum(p - 0.05, 0)
    want = np.where(Y[1] == 1, -(1 - p), p * (1 - p) * (u**4 / (1 - u) - 4 * u**3 * np.log(1 - u)))
    np.testing.assert_allclose(z.grad.numpy()[0], want, rtol=1e-10, atol=1e-14)
    # a detached weight (the original ASL paper's option) gives a different gradient on negatives
    zd = t(Z[1:2]).requires_grad_()
    pd = torch.sigmoid(zd)
    neg = 1 - y
    w = ((pd - 0.05).clamp(min=0) ** 4 * neg + y).detach()
    (-(torch.log(pd) * y + torch.log((1 - pd + 0.05).clamp(max=1)) * neg) * w).sum().backward()
    differs = ~np.isclose(zd.grad.numpy()[0], z.grad.numpy()[0], rtol=1e-6)
    assert differs.tolist() == ((Y[1] == 0) & (p > 0.05)).tolist()


def test_bad_input_errors():
    with pytest.raises(ValueError, match="unknown loss 'mse'"):
        build_loss("mse")
    with pytest.raises(ValueError, match="branch 'cnn'"):
        build_loss()({"cnn": torch.zeros(2, 3)}, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="multi-hot"):
        build_loss()(torch.zeros(2, 3), torch.full((2, 3), 2.0))
    with pytest.raises(ValueError, match="no branch"):
        build_loss()({}, torch.zeros(2, 3))

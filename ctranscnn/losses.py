"""Training objectives on branch logits.

The authors' objective (mmcls `BCE_ASL_Focal`, despite the name it has no BCE term) is, per branch,
the mean of an asymmetric loss (ASL) and a sigmoid focal loss, then the mean over branches:

    L = 1/2 * sum_b 1/2 * (ASL(z_b, y) + FL(z_b, y))    (= 1/4 * sum over the cnn and trans branches)

Every term is summed over classes and samples and divided by the batch size B (mmcls reduction 'mean'
with avg_factor=B), so the loss scale grows with the number of classes. Plain BCE uses the same sum/B
reduction so that switching objectives keeps the scale comparable. Targets are multi-hot {0, 1}.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

LOSS_NAMES = ("asl_focal", "asl", "focal", "bce")


@dataclass
class LossConfig:
    name: str = "asl_focal"  # one of LOSS_NAMES; 'asl_focal' is the authors' objective
    gamma_pos: float = 0.0  # ASL focusing on positives
    gamma_neg: float = 4.0  # ASL focusing on negatives
    clip: float = 0.05  # ASL probability margin on negatives
    eps: float = 1e-8  # ASL floor inside the log
    focal_gamma: float = 2.0
    focal_alpha: float = 0.25  # weight of positives; negatives get 1 - alpha


def asymmetric_loss(z: Tensor, y: Tensor, gamma_pos: float = 0.0, gamma_neg: float = 4.0,
                    clip: float = 0.05, eps: float = 1e-8) -> Tensor:
    """mmcls ASL, elementwise: pt = p (y=1) or min(1-p+clip, 1) (y=0); -log(max(pt, eps)) * (1-pt)^gamma.

    1-p is computed as sigmoid(-z) and logs as logsigmoid where that is exact: the authors' values,
    without the float32 cancellation of 1 - sigmoid(z). The focusing weight is not detached (as in mmcls).
    """
    pos = y > 0.5
    p, q = torch.sigmoid(z), torch.sigmoid(-z)  # q = 1 - p
    # log(min(1-p+clip, 1)); without clip it is logsigmoid(-z), exact also where 1-p underflows
    log_pt_neg = (q + clip).clamp(max=1.0).log() if clip > 0 else F.logsigmoid(-z)
    log_pt = torch.where(pos, F.logsigmoid(z), log_pt_neg).clamp(min=math.log(eps))  # log(max(pt, eps))
    one_minus_pt = torch.where(pos, q, (p - clip).clamp(min=0.0))  # (1 - min(1-p+clip, 1)) = max(p-clip, 0)
    weight = one_minus_pt.pow(torch.where(pos, gamma_pos, gamma_neg))
    return -log_pt * weight


def sigmoid_focal_loss(z: Tensor, y: Tensor, gamma: float = 2.0, alpha: float = 0.25) -> Tensor:
    """RetinaNet focal loss, elementwise: alpha_t * (1 - p_t)^gamma * BCEWithLogits(z, y)."""
    one_minus_pt = torch.where(y > 0.5, torch.sigmoid(-z), torch.sigmoid(z))
    alpha_t = torch.where(y > 0.5, alpha, 1 - alpha)
    return alpha_t * one_minus_pt.pow(gamma) * F.binary_cross_entropy_with_logits(z, y, reduction="none")


class BranchLoss(nn.Module):
    """loss_fn(branch_logits, targets) -> scalar: mean over branches of the per-branch objective.

    `branch_logits` is a dict {branch name: B x C logits} (a bare tensor counts as one branch).
    """

    def __init__(self, cfg: LossConfig) -> None:
        super().__init__()
        if cfg.name not in LOSS_NAMES:
            raise ValueError(f"LossConfig.name: unknown loss {cfg.name!r}; known: {', '.join(LOSS_NAMES)}")
        self.cfg = cfg

    def branch_loss(self, z: Tensor, y: Tensor) -> Tensor:
        """Objective of one branch: the mean of its terms, each summed over B x C and divided by B."""
        c, batch = self.cfg, z.shape[0]
        if c.name == "bce":
            return F.binary_cross_entropy_with_logits(z, y, reduction="sum") / batch
        terms = []
        if c.name in ("asl_focal", "asl"):
            terms.append(asymmetric_loss(z, y, c.gamma_pos, c.gamma_neg, c.clip, c.eps).sum() / batch)
        if c.name in ("asl_focal", "focal"):
            terms.append(sigmoid_focal_loss(z, y, c.focal_gamma, c.focal_alpha).sum() / batch)
        return torch.stack(terms).mean()  # mmcls averages the [ASL, FL] loss vector

    def forward(self, branch_logits: dict[str, Tensor] | Tensor, targets: Tensor) -> Tensor:
        branches = branch_logits if isinstance(branch_logits, dict) else {"main": branch_logits}
        if not branches:
            raise ValueError("loss: no branch logits given")
        for name, z in branches.items():
            if z.shape != targets.shape or z.ndim != 2:
                raise ValueError(f"loss: branch {name!r} logits {tuple(z.shape)} vs targets "
                                 f"{tuple(targets.shape)}; both must be B x C")
        # Checked on CPU only: on a GPU the check would make the host wait for the device every step (and it
        # cannot be captured in a CUDA graph); the data loaders validate every label when they read it.
        if targets.device.type == "cpu" and not bool(((targets == 0) | (targets == 1)).all()):
            raise ValueError("loss: targets must be multi-hot (only 0 and 1)")
        y = targets.to(next(iter(branches.values())).dtype)
        return torch.stack([self.branch_loss(z, y) for z in branches.values()]).mean()


def build_loss(cfg: LossConfig | str = "asl_focal") -> BranchLoss:
    """Build a branch loss from a LossConfig or a loss name (default hyper-parameters)."""
    return BranchLoss(LossConfig(name=cfg) if isinstance(cfg, str) else cfg)

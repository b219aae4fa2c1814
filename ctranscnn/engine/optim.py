"""The authors' optimiser and learning-rate schedule (mmcls config, reference spec §5.5).

AdamW without weight decay on norm weights and biases, on every other bias, and on `.cls_token`
(mmcv paramwise_cfg: norm_decay_mult=0, bias_decay_mult=0, custom_keys {'.cls_token': decay_mult 0}).

Learning rate at iteration i (0-based, set before that iteration's update), mmcv CosineAnnealing with
by_epoch=False and linear warmup:
    cos(i)  = min_lr + (lr - min_lr) * (1 + cos(pi * i / total)) / 2,     min_lr = lr * min_lr_ratio
    lr(i)   = cos(i) * (1 - (1 - i / warmup) * (1 - warmup_ratio))        for i < warmup
    lr(i)   = cos(i)                                                        otherwise
The warmup multiplies the *regular* (cosine) rate of that iteration, as mmcv's LrUpdaterHook does.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from ctranscnn.engine.config import OptimConfig, ScheduleConfig

NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)


def no_decay_names(model: nn.Module) -> set[str]:
    """Names of parameters trained without weight decay."""
    names = set()
    for module_name, module in model.named_modules():
        for name, _ in module.named_parameters(recurse=False):
            full = f"{module_name}.{name}" if module_name else name
            if isinstance(module, NORM_TYPES) or name == "bias" or ".cls_token" in f".{full}":
                names.add(full)
    return names


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    skip = no_decay_names(model)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if name in skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, cfg: OptimConfig, capturable: bool = False) -> torch.optim.AdamW:
    """AdamW on param_groups. `capturable` (CUDA graphs): step counts and the learning rate live on the device as
    tensors, which the scheduler updates in place (LRScheduler fills a tensor lr), so a captured step sees them."""
    if not capturable:
        return torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)
    device = next(model.parameters()).device
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=torch.tensor(cfg.lr, device=device),
                            betas=cfg.betas, eps=cfg.eps, capturable=True)
    for group in opt.param_groups:
        group["lr"] = torch.tensor(cfg.lr, device=device)  # one tensor per group, as for float rates
        # a float base rate: the scheduler then computes floats and fills the tensor without reading it back
        group["initial_lr"] = cfg.lr
    return opt


def lr_factor(step: int, total_steps: int, cfg: ScheduleConfig) -> float:
    """lr(step) / lr for the schedule above; `total_steps` = epochs x iterations per epoch."""
    regular = cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * (1 + math.cos(math.pi * step / total_steps)) / 2
    if step < cfg.warmup_iters:
        return regular * (1 - (1 - step / cfg.warmup_iters) * (1 - cfg.warmup_ratio))
    return regular


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, cfg: ScheduleConfig):
    """Per-iteration LambdaLR: call .step() after each optimizer step; its state_dict resumes exactly."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total_steps, cfg))


def current_lr(scheduler: torch.optim.lr_scheduler.LambdaLR) -> float:
    """The rate of the next step of the first group, as a float (LambdaLR's own formula), without reading a
    device tensor."""
    return scheduler.base_lrs[0] * scheduler.lr_lambdas[0](scheduler.last_epoch)

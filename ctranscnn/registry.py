"""Model registry: every model (CTransCNN presets, ablations, baselines) is built by name.

Uniform model API (timm-style), shared by every registered model:
  forward_features(x) -> features (model specific)
  forward_head(features) -> dict[branch name, logits B x C]   (CTransCNN: {"cnn", "trans"})
  fuse_logits(branches) -> fused logits B x C                 (CTransCNN: 0.9*cnn + 0.1*trans)
  forward(x) -> fused logits; probabilities are sigmoid(forward(x))
Training losses are computed per branch and averaged over branches (see ctranscnn.losses).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # importing the package must not import torch (data-only commands stay fast)
    import torch.nn as nn

_REGISTRY: dict[str, Callable[..., "nn.Module"]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: register a factory `fn(num_classes: int, **overrides) -> nn.Module` under its name."""
    if fn.__name__ in _REGISTRY:
        raise ValueError(f"model {fn.__name__!r} registered twice")
    _REGISTRY[fn.__name__] = fn
    return fn


def _load_all() -> None:
    # Importing the model modules runs their @register_model decorators.
    import ctranscnn.models  # noqa: F401


def list_models() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def create_model(name: str, num_classes: int, **overrides) -> nn.Module:
    """Build a registered model with randomly initialised weights (never downloads anything)."""
    _load_all()
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](num_classes=num_classes, **overrides)

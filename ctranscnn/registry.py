"""Model registry: every model (CTransCNN presets, ablations, baselines) is built by name, once.

Owns the name -> factory table and where fast paths are chosen: a factory registered with `fast_switches`
(CTransCNN and Conformer) gets them when `create_model(..., fast=True)`; for the others `fast` changes nothing.

Uniform model API (timm-style), shared by every registered model:
  forward_features(x) -> features (model specific)
  forward_head(features) -> dict[branch name, logits B x C]   (CTransCNN: {"cnn", "trans"})
  fuse_logits(branches) -> fused logits B x C                 (CTransCNN: 0.9*cnn + 0.1*trans)
  forward(x) -> fused logits; probabilities are sigmoid(forward(x))
Training losses are computed per branch and averaged over branches (see ctranscnn.losses). For inference,
`ctranscnn.models.folding.fold_for_inference` folds BatchNorms into convolutions (a no-op for the baselines).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:  # importing the package must not import torch (data-only commands stay fast)
    import torch.nn as nn


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., "nn.Module"]
    fast_switches: Mapping[str, Any] = field(default_factory=dict)  # config overrides that `fast=True` adds


_REGISTRY: dict[str, _Entry] = {}


def register_model(fn: Callable[..., nn.Module] | None = None, *, fast_switches: Mapping[str, Any] | None = None):
    """Decorator, bare or with `fast_switches=`: register a factory `fn(num_classes: int, **overrides) -> nn.Module`
    under its name; `fast_switches` are the exact speed overrides `create_model(..., fast=True)` applies."""
    def register(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if fn.__name__ in _REGISTRY:
            raise ValueError(f"model {fn.__name__!r} registered twice")
        _REGISTRY[fn.__name__] = _Entry(fn, dict(fast_switches or {}))
        return fn
    return register if fn is None else register(fn)


def _load_all() -> None:
    # Importing the model modules runs their @register_model decorators.
    import ctranscnn.models  # noqa: F401


def list_models() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def _entry(name: str) -> _Entry:
    _load_all()
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def fast_switches(name: str) -> dict[str, Any]:
    """The overrides `fast=True` adds for model `name` ({} for models without fast paths)."""
    return dict(_entry(name).fast_switches)


def create_model(name: str, num_classes: int, fast: bool = False, **overrides) -> nn.Module:
    """Build a registered model once, with randomly initialised weights (never downloads anything).

    fast: also apply the model's registered fast switches (exact speed paths: same parameters, same numbers up
    to float rounding); `overrides` win over them. A model built with `fast` has the same initial weights as
    one built without, for the same seed."""
    entry = _entry(name)
    switches = entry.fast_switches if fast else {}
    return entry.factory(num_classes=num_classes, **{**switches, **overrides})

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

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, get_args, get_origin, get_type_hints

if TYPE_CHECKING:  # importing the package must not import torch (data-only commands stay fast)
    import torch.nn as nn


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., "nn.Module"]
    fast_switches: Mapping[str, Any] = field(default_factory=dict)  # config overrides that `fast=True` adds
    config: Any = None  # the factory's default config (a dataclass): its fields are the accepted overrides


_REGISTRY: dict[str, _Entry] = {}


def register_model(fn: Callable[..., nn.Module] | None = None, *, fast_switches: Mapping[str, Any] | None = None,
                   config: Any = None):
    """Decorator, bare or with keywords: register a factory `fn(num_classes: int, **overrides) -> nn.Module` under
    its name. `fast_switches`: the exact speed overrides `create_model(..., fast=True)` applies. `config`: the
    frozen dataclass the factory builds from, so that overrides are checked against its fields and types."""
    def register(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if fn.__name__ in _REGISTRY:
            raise ValueError(f"model {fn.__name__!r} registered twice")
        _REGISTRY[fn.__name__] = _Entry(fn, dict(fast_switches or {}), config)
        return fn
    return register if fn is None else register(fn)


class OverrideError(ValueError):
    """A model override that does not fit the model's config; `key` names it (None: the combination)."""

    def __init__(self, key: str | None, message: str):
        self.key = key
        super().__init__(f"{key}: {message}" if key else message)


def _accepted(hint: Any) -> tuple[Callable[[Any], bool], str]:
    """(does a value fit, what is accepted) for a config field's type; YAML/--set values arrive already typed."""
    if get_origin(hint) is Literal:
        choices = get_args(hint)
        return (lambda v: isinstance(v, str) and v in choices), "one of " + ", ".join(map(repr, choices))
    if hint is bool:  # never 0/1 or a string: `mmaef=flase` must not quietly build the full model
        return (lambda v: isinstance(v, bool)), "true or false"
    if hint is int:
        return (lambda v: isinstance(v, int) and not isinstance(v, bool)), "an integer"
    if hint is float:
        return (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)), "a number"
    if hint is str:
        return (lambda v: isinstance(v, str)), "a string"
    return (lambda v: True), str(hint)


def check_overrides(name: str, overrides: Mapping[str, Any]) -> None:
    """Raise OverrideError unless every override of model `name` is a field of its config with a value of that
    field's type, and the resulting config is valid. Models registered without a config are not checked."""
    config = _entry(name).config
    if config is None or not overrides:
        return
    hints = get_type_hints(type(config))
    for key, value in overrides.items():
        if key not in hints:
            raise OverrideError(key, f"not a setting of {name}; accepted: {', '.join(hints)}")
        fits, accepted = _accepted(hints[key])
        if not fits(value):
            raise OverrideError(key, f"expected {accepted}, got {value!r}")
    try:
        replace(config, **overrides)
    except ValueError as err:  # the config's own cross-field checks (e.g. depths a multiple of 3)
        raise OverrideError(None, f"{name}: {err}") from None


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


def model_config(name: str) -> Any:
    """The registered default config of model `name` (a dataclass), or None for models registered without one."""
    return _entry(name).config


def create_model(name: str, num_classes: int, fast: bool = False, **overrides) -> nn.Module:
    """Build a registered model once, with randomly initialised weights (never downloads anything).

    fast: also apply the model's registered fast switches (exact speed paths: same parameters, same numbers up
    to float rounding); `overrides` win over them. A model built with `fast` has the same initial weights as
    one built without, for the same seed."""
    entry = _entry(name)
    check_overrides(name, overrides)
    switches = entry.fast_switches if fast else {}
    return entry.factory(num_classes=num_classes, **{**switches, **overrides})

"""The paper's comparison models (reference_spec.md §6.1), built with timm, behind the uniform model API.

Conformer is not here: it is CTransCNN with MMAEF, MBR and IIM switched off (`conformer_tiny`, `conformer_mini`
in ctranscnn.models.ctranscnn). Every model trains from scratch (timm `pretrained=False`, nothing is ever
downloaded); `pretrained_path` optionally loads a local timm/ImageNet checkpoint into the trunk.

Paper-size variants. The authors' repository has no baseline configs, so we take, for each family, the first
ImageNet config of mmcls 0.23 (the authors' framework), which is also the "tiny" member where one exists:

| name       | timm variant                  | why                                                   |
|------------|-------------------------------|-------------------------------------------------------|
| resnet34   | resnet34                      | named by the paper                                    |
| resnet50   | resnet50                      | named by the paper                                    |
| resnext50  | resnext50_32x4d               | mmcls resnext50-32x4d                                 |
| seresnet50 | seresnet50                    | mmcls seresnet50                                      |
| vit        | vit_base_patch16_224          | mmcls has no ViT below base; patch 16 like CTransCNN  |
| swin       | swin_tiny_patch4_window7_224  | mmcls swin-tiny                                       |
| convnext   | convnext_tiny                 | mmcls convnext-tiny                                   |
| repvgg     | repvgg_a0                     | mmcls repvgg-A0 (train-time multi-branch form)        |
| deit       | deit_tiny_patch16_224         | mmcls deit-tiny (a ViT; DeiT differs by size here)    |

`*_mini` variants keep each family's block type at CPU-demo size (0.3-3.4 M parameters).

Input size: CNNs take any size (>= 32 px). ViT/DeiT take any H, W divisible by 16 (position embeddings are built
for `img_size`, default 224, and resampled for other sizes); Swin takes any size (padded internally to whole
windows). Pass `img_size` to build at the training size and skip the resampling.

Head convention (all models): the trunk's pooled features (timm's own pooling: global average for CNNs and Swin,
class token for ViT/DeiT) go through one Linear classifier, trunc-normal(std 0.02) weights and zero bias, like
the authors' head. `forward_head` returns {'main': logits}.
"""
from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path

import timm
import torch
import torch.nn as nn
from timm.models import byobnet, load_pretrained

from ctranscnn.registry import register_model


@dataclass(frozen=True)
class _Spec:
    timm_name: str
    kwargs: dict = field(default_factory=dict)


_RESNET_MINI = dict(layers=(1, 1, 1, 1), channels=(16, 32, 64, 128), stem_width=32)
_DYNAMIC = dict(dynamic_img_size=True)

SPECS: dict[str, _Spec] = {
    "resnet34": _Spec("resnet34"),
    "resnet50": _Spec("resnet50"),
    "resnext50": _Spec("resnext50_32x4d"),
    "seresnet50": _Spec("seresnet50"),
    "vit": _Spec("vit_base_patch16_224", _DYNAMIC),
    "swin": _Spec("swin_tiny_patch4_window7_224", _DYNAMIC),
    "convnext": _Spec("convnext_tiny"),
    "repvgg": _Spec("repvgg_a0"),
    "deit": _Spec("deit_tiny_patch16_224", _DYNAMIC),
    # CPU demo sizes: same block types, one block per stage (two in stage 3 where the family is deep there).
    "resnet34_mini": _Spec("resnet34", dict(layers=(1, 1, 1, 1), channels=(32, 64, 128, 256), stem_width=32)),
    "resnet50_mini": _Spec("resnet50", _RESNET_MINI),
    "resnext50_mini": _Spec("resnext50_32x4d", dict(_RESNET_MINI, cardinality=8, base_width=8)),
    "seresnet50_mini": _Spec("seresnet50", _RESNET_MINI),
    "vit_mini": _Spec("vit_base_patch16_224", dict(_DYNAMIC, embed_dim=256, depth=4, num_heads=4, patch_size=8)),
    "swin_mini": _Spec(
        "swin_tiny_patch4_window7_224",
        dict(_DYNAMIC, embed_dim=32, depths=(1, 1, 2, 1), num_heads=(1, 2, 4, 8)),
    ),
    "convnext_mini": _Spec("convnext_tiny", dict(depths=(1, 1, 2, 1), dims=(32, 64, 128, 256))),
    "repvgg_mini": _Spec("repvgg_a0", dict(depths=(1, 1, 2, 1), widths=(32, 64, 128, 256))),
    "deit_mini": _Spec("deit_tiny_patch16_224", dict(_DYNAMIC, embed_dim=192, depth=4, num_heads=3, patch_size=8)),
}


def _build_trunk(spec: _Spec, overrides: dict) -> nn.Module:
    """A timm model without classifier (num_classes=0), random weights."""
    kwargs = {**spec.kwargs, **overrides}
    if spec.timm_name.startswith("repvgg") and "depths" in kwargs:
        # RepVGG stage depths/widths live in a ByobNet config, not in constructor arguments.
        base = byobnet.model_cfgs[spec.timm_name]
        depths, widths = kwargs.pop("depths"), kwargs.pop("widths")
        blocks = tuple(dataclasses.replace(b, d=d, c=c) for b, d, c in zip(base.blocks, depths, widths))
        cfg = dataclasses.replace(base, blocks=blocks, stem_chs=widths[0])
        trunk = byobnet.ByobNet(cfg, num_classes=0, **kwargs)
        trunk.pretrained_cfg = dict(timm.models.get_pretrained_cfg(spec.timm_name).to_dict())
        return trunk
    return timm.create_model(spec.timm_name, pretrained=False, num_classes=0, **kwargs)


def _load_local_weights(trunk: nn.Module, path: str | Path) -> None:
    """Load a local timm-format checkpoint into the trunk; its classifier is dropped (we use our own head)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained_path {path} does not exist")
    # Point timm's own loader at the file only (no url, no hub): it unwraps checkpoints, drops the classifier
    # and applies the family's key/shape conversions (e.g. resampling ViT position embeddings).
    cfg = dict(trunk.pretrained_cfg, source="", file=str(path), url=None, hf_hub_id=None, state_dict=None)
    filter_fn = getattr(sys.modules[type(trunk).__module__], "checkpoint_filter_fn", None)
    load_pretrained(trunk, pretrained_cfg=cfg, num_classes=0, filter_fn=filter_fn, strict=True)


class TimmClassifier(nn.Module):
    """A timm trunk with the project's linear multi-label head and the uniform model API (ctranscnn.registry)."""

    branch_names = ("main",)

    def __init__(self, name: str, num_classes: int, pretrained_path: str | Path | None = None, **overrides):
        super().__init__()
        if name not in SPECS:
            raise KeyError(f"unknown baseline {name!r}; known: {', '.join(SPECS)}")
        self.spec = SPECS[name]
        self.num_classes = num_classes
        self.trunk = _build_trunk(self.spec, overrides)
        if pretrained_path is not None:
            _load_local_weights(self.trunk, pretrained_path)
        self.head = nn.Linear(self.trunk.num_features, num_classes)
        nn.init.trunc_normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk.forward_features(x)

    def forward_head(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"main": self.head(self.trunk.forward_head(features, pre_logits=True))}

    def fuse_logits(self, branches: dict[str, torch.Tensor]) -> torch.Tensor:
        return branches["main"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse_logits(self.forward_head(self.forward_features(x)))


def _factory(name: str):
    def build(num_classes: int, pretrained_path: str | Path | None = None, **overrides) -> TimmClassifier:
        return TimmClassifier(name, num_classes, pretrained_path=pretrained_path, **overrides)

    build.__name__ = name
    build.__doc__ = f"Baseline {name}: timm {SPECS[name].timm_name} with the project's linear head."
    return build


for _name in SPECS:
    register_model(_factory(_name))

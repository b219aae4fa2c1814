"""token_grid: the transformer's token grid read from a forward pass, against the stride arithmetic, and the
demo profile's rule: every transformer in its plan sees at least an 8 x 8 grid at the demo image size."""
from __future__ import annotations

import pytest
import torch

from ctranscnn import create_model
from ctranscnn.engine.config import PROFILES
from ctranscnn.models import ctranscnn as C
from ctranscnn.models.complexity import token_grid

DEMO_SIZE = PROFILES["demo"]["data.image_size"]


@pytest.mark.parametrize("name, size", [("ctranscnn_mini", 64), ("conformer_mini", 100), ("ctranscnn_micro", 64),
                                        ("ctranscnn_micro", 100)])
def test_ctranscnn_grid_is_stem_then_token_stride(name, size):
    model = create_model(name, 3)
    assert token_grid(model, size) == C.token_grid(size, size, model.cfg.patch_size)


@pytest.mark.parametrize("name, size, want", [("vit_mini", 64, (8, 8)), ("deit_mini", 48, (6, 6)),
                                              ("swin_mini", 64, (16, 16)), ("vit", 64, (4, 4)),
                                              ("resnet50_mini", 64, None), ("convnext_mini", 64, None)])
def test_timm_grid_is_the_patch_grid(name, size, want):
    model = create_model(name, 3).train()
    assert token_grid(model, size) == want  # patch 8 (ViT/DeiT minis), 16 (ViT), 4 (Swin), no tokens (CNNs)
    assert model.training  # left as it was found


def test_every_demo_transformer_sees_an_8x8_grid():
    from ctranscnn.report.plan import CTRANSCNN, SOTA_MODELS
    from ctranscnn.engine.config import resolve_model_name, load_config

    names = {resolve_model_name(load_config(None, {"profile": "demo", "model.name": n}).model)
             for n in (CTRANSCNN, "conformer_tiny", *SOTA_MODELS)}
    grids = {n: token_grid(create_model(n, 3), DEMO_SIZE) for n in names}
    transformers = {n: g for n, g in grids.items() if g is not None}
    assert {"ctranscnn_mini", "conformer_mini", "vit_mini", "deit_mini", "swin_mini"} <= set(transformers)
    assert all(min(g) >= 8 for g in transformers.values()), transformers


def test_unstrided_stage3_keeps_the_stage2_map_and_couples_it_to_the_tokens():
    # patch 8 + stage3_stride 1 (the mini preset): tokens at /8, CNN stage maps /4, /8, /8, each IIM down factor
    # the ratio of its stage map to the token grid; the authors' layout (patch 16, stride 2) is /4, /8, /16.
    for cfg, maps in [(C.PRESETS["mini"], (16, 8, 8)), (C.PRESETS["micro"], (16, 8, 4))]:
        model = C.CTransCNN(3, cfg).eval()
        sizes = {}
        hooks = [b.cnn_block.register_forward_hook(lambda m, i, o, k=k: sizes.__setitem__(k, o[0].shape[-1]))
                 for k, b in enumerate(model.backbone.blocks())]
        with torch.no_grad():
            out = model(torch.zeros(2, 3, 64, 64))
        for h in hooks:
            h.remove()
        assert out.shape == (2, 3)
        grid = C.token_grid(64, 64, cfg.patch_size)[0]
        per_stage = cfg.depths // 3
        stage_maps = (sizes[0], sizes[per_stage - 1], sizes[2 * per_stage - 1])
        assert stage_maps == maps
        assert [b.down for b in model.backbone.blocks()] == [m // grid for m in (sizes[k] for k in sorted(sizes))]


@pytest.mark.parametrize("kw", [dict(stage3_stride=3), dict(patch_size=8), dict(patch_size=12, stage3_stride=1)])
def test_token_stride_must_fit_the_cnn_stages(kw):
    with pytest.raises(ValueError, match="stage3_stride|patch_size"):
        C.CTransCNNConfig(**kw)

"""token_grid: the transformer's token grid read from a forward pass, against the stride arithmetic."""
from __future__ import annotations

import pytest

from ctranscnn import create_model
from ctranscnn.models import ctranscnn as C
from ctranscnn.models.complexity import token_grid


@pytest.mark.parametrize("name, size", [("ctranscnn_mini", 128), ("conformer_mini", 128), ("ctranscnn_micro", 64),
                                        ("ctranscnn_micro", 100)])
def test_ctranscnn_grid_is_stem_then_token_stride(name, size):
    model = create_model(name, 3)
    assert token_grid(model, size) == C.token_grid(size, size, model.cfg.patch_size)
    assert token_grid(model, 128) == (8, 8)  # the demo size: /4 stem, then /4 tokens


@pytest.mark.parametrize("name, size, want", [("vit_mini", 128, (8, 8)), ("deit_mini", 64, (4, 4)),
                                              ("swin_mini", 128, (32, 32)), ("resnet50_mini", 128, None),
                                              ("convnext_mini", 64, None)])
def test_timm_grid_is_the_patch_grid(name, size, want):
    model = create_model(name, 3).train()
    assert token_grid(model, size) == want  # patch 16 (ViT/DeiT), patch 4 (Swin), no tokens (CNNs)
    assert model.training  # left as it was found

"""Baselines: every model builds, trains (forward + backward), has the expected parameter count and API."""
from __future__ import annotations

import pytest
import timm
import torch
import torchvision.models as tvm

from ctranscnn.models.baselines import SPECS
from ctranscnn.models.complexity import model_complexity, parameter_counts
from ctranscnn.registry import create_model, list_models

C = 7
PAPER = ["resnet34", "resnet50", "resnext50", "seresnet50", "vit", "swin", "convnext", "repvgg", "deit"]
MINI = [f"{name}_mini" for name in PAPER]
# Independent builds of the same architectures with a C-class linear head (torchvision where it has them).
ORACLE = {
    "resnet34": lambda: tvm.resnet34(num_classes=C),
    "resnet50": lambda: tvm.resnet50(num_classes=C),
    "resnext50": lambda: tvm.resnext50_32x4d(num_classes=C),
    "vit": lambda: tvm.vit_b_16(num_classes=C),
    "swin": lambda: tvm.swin_t(num_classes=C),
    "convnext": lambda: tvm.convnext_tiny(num_classes=C),
    "seresnet50": lambda: timm.create_model("seresnet50", num_classes=C),
    "repvgg": lambda: timm.create_model("repvgg_a0", num_classes=C),
    "deit": lambda: timm.create_model("deit_tiny_patch16_224", num_classes=C),
}


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def check_trains(model: torch.nn.Module, size: int = 64) -> None:
    x = torch.randn(2, 3, size, size)
    model.eval()  # deterministic (Swin has drop path by default) for the API identity below
    branches = model.forward_head(model.forward_features(x))
    assert model.branch_names == ("main",) and set(branches) == {"main"}
    assert branches["main"].shape == (2, model.num_classes)
    assert torch.equal(model(x), model.fuse_logits(branches))
    model.train()
    model(x).square().mean().backward()
    first = next(p for p in model.trunk.parameters() if p.requires_grad)
    assert first.grad is not None and first.grad.abs().sum() > 0
    assert model.head.weight.grad.abs().sum() > 0


def test_registry_lists_every_baseline():
    assert set(PAPER + MINI) <= set(list_models()) and set(SPECS) == set(PAPER + MINI)


@pytest.mark.parametrize("name", MINI)
def test_mini_builds_and_trains(name):
    model = create_model(name, num_classes=C)
    assert 3e5 < n_params(model) < 3.5e6
    check_trains(model)


@pytest.mark.slow
@pytest.mark.parametrize("name", PAPER)
def test_paper_size_builds_trains_and_matches_reference_count(name):
    model = create_model(name, num_classes=C)
    assert n_params(model) == n_params(ORACLE[name]())
    check_trains(model)


def test_conformer_tiny_backbone_has_published_size():
    assert parameter_counts(create_model("conformer_tiny", num_classes=14))["params_backbone"] == 22_882_704


def test_head_is_one_linear_layer_with_authors_init():
    model = create_model("resnet34_mini", num_classes=64)
    assert isinstance(model.head, torch.nn.Linear) and model.head.in_features == 256
    assert torch.count_nonzero(model.head.bias) == 0
    assert 0.018 < model.head.weight.std().item() < 0.022
    counts = model_complexity(model, 32)
    assert counts["params_head"] == 257 * 64 and counts["gflops_32"] > 0


@pytest.mark.parametrize("name, hw", [("vit_mini", (48, 80)), ("deit_mini", (32, 32)), ("swin_mini", (40, 56)),
                                      ("convnext_mini", (40, 56)), ("resnet50_mini", (33, 47))])
def test_input_sizes(name, hw):
    model = create_model(name, num_classes=C).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, *hw)).shape == (1, C)


def test_vit_needs_sides_divisible_by_patch():
    with pytest.raises(Exception, match="divisible"):  # the minis use patch 8, the paper sizes patch 16
        create_model("vit_mini", num_classes=C)(torch.randn(1, 3, 36, 36))
    with pytest.raises(Exception, match="divisible"):
        create_model("vit", num_classes=C)(torch.randn(1, 3, 40, 40))


def test_local_timm_checkpoint_loads_into_the_trunk(tmp_path):
    source = timm.create_model("resnet50", num_classes=1000, **SPECS["resnet50_mini"].kwargs)
    torch.save(source.state_dict(), tmp_path / "r50.pth")
    model = create_model("resnet50_mini", num_classes=3, pretrained_path=tmp_path / "r50.pth")
    ours = model.trunk.state_dict()
    assert ours.keys() == {k for k in source.state_dict() if not k.startswith("fc.")}
    assert all(torch.equal(v, source.state_dict()[k]) for k, v in ours.items())
    assert model.head.weight.shape == (3, 512)


def test_vit_checkpoint_position_embeddings_follow_img_size(tmp_path):
    source = timm.create_model("vit_base_patch16_224", num_classes=10, **SPECS["vit_mini"].kwargs)
    torch.save({"state_dict": source.state_dict()}, tmp_path / "vit.pth")
    model = create_model("vit_mini", num_classes=3, pretrained_path=tmp_path / "vit.pth", img_size=32)
    assert model.trunk.pos_embed.shape == (1, 1 + 4 * 4, 256)  # patch 8: resampled from 28 x 28 to 4 x 4
    assert torch.equal(model.trunk.patch_embed.proj.weight, source.patch_embed.proj.weight)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        create_model("vit_mini", num_classes=3, pretrained_path=tmp_path / "missing.pth")


def test_unknown_baseline_is_named():
    from ctranscnn.models.baselines import TimmClassifier

    with pytest.raises(KeyError, match="resnet18"):
        TimmClassifier("resnet18", 3)

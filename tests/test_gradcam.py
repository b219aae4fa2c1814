"""Grad-CAM: equals pytorch-grad-cam on baselines, per-label maps for CTransCNN's branches, localises a trained
detector's square, and the paper-style figure is written."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from ctranscnn.gradcam import cam_layers, gradcam_figure, gradcam_maps, plot_gradcam
from ctranscnn.localization import box_mask, localise, summarise
from ctranscnn.models.ctranscnn import token_grid
from ctranscnn.registry import create_model


@pytest.mark.parametrize("name", ["resnet50_mini", "vit_mini", "swin_mini", "convnext_mini", "repvgg_mini"])
def test_equals_pytorch_grad_cam(name):
    model = create_model(name, num_classes=4).eval()
    x = torch.randn(2, 3, 64, 64)
    ours = gradcam_maps(model, x, [1, 3])
    layer = cam_layers(model)["main"]
    with GradCAM(model=model, target_layers=[layer.module], reshape_transform=lambda a: layer.to_map(a, (64, 64))) as cam:
        ref = cam(input_tensor=x, targets=[ClassifierOutputTarget(1), ClassifierOutputTarget(3)])
    assert ours.shape == (2, 64, 64)
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_ctranscnn_branch_maps_have_image_size_and_differ_between_labels():
    model = create_model("ctranscnn_micro", num_classes=3)
    model.train()
    x = torch.randn(2, 3, 64, 80)
    for target in ("fused", "cnn", "trans"):
        maps = [gradcam_maps(model, x, k, target=target) for k in range(3)]
        for m in maps:
            assert m.shape == (2, 64, 80) and m.dtype == np.float32
            assert m.min() >= 0.0 and m.max() <= 1.0
        assert max(np.abs(maps[0] - maps[k]).max() for k in (1, 2)) > 0.1, target
    assert model.training  # mode restored
    assert all(p.grad is None for p in model.parameters())  # parameter gradients untouched


def test_ctranscnn_token_layout_drops_class_token():
    model = create_model("ctranscnn_micro", num_classes=2)
    layer = cam_layers(model)["trans"]
    h, w = token_grid(64, 80)
    tokens = torch.arange(2 * (1 + h * w) * 5, dtype=torch.float32).view(2, 1 + h * w, 5)
    grid = layer.to_map(tokens, (64, 80))
    assert grid.shape == (2, 5, h, w)
    assert torch.equal(grid[1, :, 0, 1], tokens[1, 2])  # token 1 of the grid is the one after the class token


def test_bad_arguments_are_named():
    model = create_model("resnet50_mini", num_classes=3)
    x = torch.randn(2, 3, 32, 32)
    with pytest.raises(ValueError, match="target"):
        gradcam_maps(model, x, 0, target="cnn")
    with pytest.raises(ValueError, match="class_index"):
        gradcam_maps(model, x, 3)
    with pytest.raises(ValueError, match="class_index"):
        gradcam_maps(model, x, [0, 1, 2])


def _square_images(n: int, size: int, side: int, gen: torch.Generator, positions=None):
    """Noise images; even ones (or all, with `positions`) carry one bright square. Returns images, labels, boxes."""
    x = 0.3 * torch.randn(n, 1, size, size, generator=gen)
    y = torch.zeros(n, 1)
    boxes = []
    for i in range(n):
        if positions is None and i % 2:
            continue
        r, c = positions[i] if positions else torch.randint(0, size - side + 1, (2,), generator=gen).tolist()
        x[i, :, r:r + side, c:c + side] += 1.5
        y[i] = 1
        boxes.append((str(i), "square", c, r, side, side, size, size))
    columns = ["image_id", "label", "x", "y", "w", "h", "orig_w", "orig_h"]
    return x.expand(-1, 3, -1, -1).contiguous(), y, pd.DataFrame(boxes, columns=columns)


def test_trained_detector_map_peaks_inside_the_square():
    gen = torch.Generator().manual_seed(0)
    size, side = 48, 24
    x, y, _ = _square_images(256, size, side, gen)
    # A ResNet-34-style trunk at output stride 8 gives a 6 x 6 map: fine enough to point into the square.
    model = create_model("resnet34_mini", num_classes=1, output_stride=8, channels=(16, 16, 16, 16), stem_width=16)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(60):
        i = torch.randint(0, len(x), (32,), generator=gen)
        loss = F.binary_cross_entropy_with_logits(model(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    positions = [(8, 8), (8, 16), (16, 8), (16, 16), (0, 0), (0, 24), (24, 0), (24, 24)]
    xt, _, boxes = _square_images(len(positions), size, side, torch.Generator().manual_seed(1), positions)
    model.eval()
    with torch.no_grad():
        assert (torch.sigmoid(model(xt)) > 0.5).all()  # it detects every square

    per_box = localise(model, boxes, ["square"], lambda image_id: xt[int(image_id)], batch_size=4)
    assert per_box["hit"].iloc[:4].all()  # squares away from the border: always hit
    assert summarise(per_box).loc["overall", "pointing"] >= 7 / 8  # chance level is (24/48)^2 = 1/4
    maps = gradcam_maps(model, xt, 0)
    for cam, (r, c) in zip(maps, positions):
        inside = box_mask((c, r, c + side, r + side), cam.shape)
        assert cam[inside].mean() > 1.5 * cam[~inside].mean()


def test_figure_writes_png_and_pdf(tmp_path):
    classes = ["a", "b", "c"]
    models = {name: create_model(name, num_classes=3) for name in ("resnet50_mini", "vit_mini", "ctranscnn_micro")}
    x = torch.randn(2, 3, 64, 64)
    labels = np.array([[1, 0, 1], [0, 0, 0]])
    paths = gradcam_figure(x, labels, models, classes, tmp_path / "cams")
    assert set(paths) == {"png", "pdf"}
    with Image.open(paths["png"]) as im:
        assert im.width > im.height > 100  # 2 rows x 4 columns of panels
    assert paths["pdf"].read_bytes()[:4] == b"%PDF"
    with pytest.raises(ValueError, match="labels"):
        gradcam_figure(x, labels[:, :2], models, classes, tmp_path / "bad")


def test_figure_panels_name_model_label_probability_and_show_the_colour_scale():
    import matplotlib.pyplot as plt

    classes = ["a", "b", "c"]
    models = {name: create_model(name, num_classes=3).eval() for name in ("resnet50_mini", "ctranscnn_micro")}
    x = torch.randn(2, 3, 64, 64)
    labels = np.array([[1, 0, 1], [0, 0, 0]])
    fig = plot_gradcam(x, labels, models, classes)
    assert fig.get_figwidth() == pytest.approx(7.16)  # two-column page width
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 1 and "Grad-CAM" in bars[0].get_ylabel()
    panels = np.array([ax for ax in fig.axes if ax.get_label() != "<colorbar>"]).reshape(2, 3)
    assert panels[0, 0].get_title().endswith("true: a, c") and panels[1, 0].get_title().endswith("true: none")
    for c, (name, model) in enumerate(models.items(), start=1):
        with torch.no_grad():
            prob = torch.sigmoid(model(x)).numpy()
        # Row 0 explains its higher-scoring true label, row 1 (no labels) its highest-scoring label.
        explained = [max((0, 2), key=lambda k: prob[0, k]), int(prob[1].argmax())]
        for r, k in enumerate(explained):
            title = panels[r, c].get_title()
            assert title.startswith(name) and f"map: {classes[k]} (p={prob[r, k]:.2f})" in title
            assert all(t.get_fontsize() >= 6 for t in (panels[r, c].title,))
    plt.close(fig)

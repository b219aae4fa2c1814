"""Every speed switch against the faithful eager path: same weights, same outputs and gradients (train) or
same eval outputs (BN folding), within 1e-5 relative in fp32; plus the bench CLI's JSON contract."""
from __future__ import annotations

import json

import pytest
import torch

from ctranscnn import create_model
from ctranscnn.cli import main
from ctranscnn.losses import build_loss
from ctranscnn.models.ctranscnn import FAST_SWITCHES
from ctranscnn.models.folding import fold_for_inference

TOL = 1e-5


def rel_err(ref: torch.Tensor, other: torch.Tensor, floor: float = 0.0) -> float:
    return ((ref - other).abs().max() / max(ref.abs().max().item(), floor, 1e-30)).item()


def train_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[dict, dict]:
    torch.manual_seed(1)  # the same DropPath draws for both paths
    model.train()
    branches = model.forward_head(model.forward_features(x))
    build_loss("asl_focal")(branches, y).backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}  # head.fc is never used
    return {k: v.detach() for k, v in branches.items()}, grads


def assert_same_training(name: str, switches: dict, size: int = 64, batch: int = 3, **cfg) -> None:
    ref = create_model(name, 5, drop_path_rate=0.1, **cfg)
    fast = create_model(name, 5, drop_path_rate=0.1, **cfg, **switches)
    fast.load_state_dict(ref.state_dict())  # same keys: the switches add or rename nothing
    x = torch.randn(batch, 3, size, size)
    y = (torch.rand(batch, 5) < 0.3).float()
    out_ref, g_ref = train_step(ref, x, y)
    out_fast, g_fast = train_step(fast, x, y)
    for branch in out_ref:
        assert rel_err(out_ref[branch], out_fast[branch]) < TOL, branch
    # Biases right before a train-mode BN (C2T conv1, T2C conv_project) have an exactly zero gradient in exact
    # arithmetic (BN removes the mean), so both paths hold only rounding noise there: compare every gradient
    # relative to at least 1e-4 of the largest gradient in the model.
    floor = 1e-4 * max(g.abs().max().item() for g in g_ref.values())
    assert g_ref.keys() == g_fast.keys()
    errors = {n: rel_err(g_ref[n], g_fast[n], floor) for n in g_ref}
    assert max(errors.values()) < TOL, sorted(errors.items(), key=lambda kv: -kv[1])[:3]
    for (key, a), b in zip(ref.state_dict().items(), fast.state_dict().values()):  # BN running stats
        assert rel_err(a.double(), b.double()) < TOL, key


@pytest.mark.parametrize("switch", sorted(FAST_SWITCHES))
def test_each_switch_alone_matches_faithful_training(switch: str) -> None:
    assert_same_training("ctranscnn_micro", {switch: True})


@pytest.mark.parametrize("name,cfg", [
    ("ctranscnn_micro", {}),
    ("ctranscnn_micro", {"attention": "softmax"}),
    ("ctranscnn_micro", {"double_bn2": False, "iim": False}),
    ("conformer_mini", {}),
])
def test_all_switches_match_faithful_training(name: str, cfg: dict) -> None:
    assert_same_training(name, FAST_SWITCHES, **cfg)


def test_all_switches_match_at_authors_size() -> None:
    assert_same_training("ctranscnn_tiny", FAST_SWITCHES, size=64, batch=2)


def test_switches_do_not_touch_the_state_dict() -> None:
    plain = create_model("ctranscnn_micro", 5).state_dict()
    fast = create_model("ctranscnn_micro", 5, **FAST_SWITCHES).state_dict()
    assert [(k, v.shape) for k, v in plain.items()] == [(k, v.shape) for k, v in fast.items()]


def trained_looking(name: str, **cfg) -> torch.nn.Module:
    """Non-trivial BN statistics and affine parameters (fresh ones are 0/1, which would hide folding errors)."""
    model = create_model(name, 5, **cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        model.train()
        for _ in range(2):
            model(torch.randn(4, 3, 64, 64))
    return model.eval()


@pytest.mark.parametrize("name,cfg", [
    ("ctranscnn_micro", {}),
    ("ctranscnn_micro", {"double_bn2": False}),
    ("ctranscnn_micro", {"mbr": False}),
    ("ctranscnn_micro", {"iim": False, "attention": "softmax"}),
    ("conformer_mini", {}),
    ("ctranscnn_tiny", {}),
])
def test_folded_inference_matches_eval(name: str, cfg: dict) -> None:
    model = trained_looking(name, **cfg)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded = fold_for_inference(model)
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        ref = model.forward_head(model.forward_features(x))
        out = folded.forward_head(folded.forward_features(x))
        assert rel_err(model(x), folded(x)) < TOL
    for branch in ref:
        assert rel_err(ref[branch], out[branch]) < TOL, branch
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the original is untouched
    assert all(p.requires_grad for p in model.parameters())


def test_folded_inference_with_channels_last() -> None:
    model = trained_looking("ctranscnn_micro")
    folded = fold_for_inference(model).to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        assert rel_err(model(x), folded(x.contiguous(memory_format=torch.channels_last))) < TOL


def test_bf16_training_tracks_fp32() -> None:
    """A few AdamW steps from the same weights on the same batches: bf16 autocast follows the fp32 losses."""
    curves = {}
    for bf16 in (False, True):
        torch.manual_seed(0)
        model = create_model("ctranscnn_micro", 5, drop_path_rate=0.0, **FAST_SWITCHES)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        loss_fn = build_loss("asl_focal")
        data = torch.Generator().manual_seed(1)
        curve = []
        for _ in range(6):
            x = torch.randn(8, 3, 32, 32, generator=data)
            y = (x.mean(dim=(1, 2, 3))[:, None] > torch.linspace(-0.1, 0.1, 5)).float()  # learnable targets
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = loss_fn(model.forward_head(model.forward_features(x)), y)
            loss.backward()
            opt.step()
            opt.zero_grad()
            curve.append(loss.item())
        curves[bf16] = torch.tensor(curve)
    assert curves[True][-1] < curves[True][0]  # it learns
    assert rel_err(curves[False], curves[True]) < 0.05  # bf16 has 8 mantissa bits: a few % per step is expected


@pytest.mark.parametrize("mode,flags", [("infer", ["--fast", "--channels-last"]), ("train", ["--fast", "--bf16"])])
def test_bench_cli_json(mode: str, flags: list[str], capsys: pytest.CaptureFixture) -> None:
    argv = ["bench", "--model", "ctranscnn_micro", "--size", "32", "--batch", "2", "--mode", mode,
            "--warmup", "0", "--repeats", "1", "--threads", "1", "--json", *flags]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["images_per_s"] > 0 and result["ref_images_per_s"] > 0
    assert result["ratio"] == pytest.approx(result["images_per_s"] / result["ref_images_per_s"])
    assert result["images_per_s"] == pytest.approx(2 / result["step_s"][0])
    assert result["mode"] == mode and result["options"]["fast"] is True
    # resnet50: 4.1 GMACs at 224 px, scaling with the pixel count; a train step counts ~3x the forward
    forward = 2 * 4.1 * (32 / 224) ** 2
    assert result["ref_gflop_per_image"] == pytest.approx(forward * (3 if mode == "train" else 1), rel=0.1)


def test_bench_rejects_bad_arguments() -> None:
    with pytest.raises(SystemExit, match="batch"):
        main(["bench", "--model", "ctranscnn_micro", "--size", "16", "--batch", "2", "--threads", "1"])


def test_bench_cuda_graph_needs_cuda() -> None:
    with pytest.raises(SystemExit, match="cuda_graph needs a CUDA device"):
        main(["bench", "--model", "ctranscnn_micro", "--size", "32", "--batch", "2", "--threads", "1", "--no-ref",
              "--warmup", "0", "--repeats", "1", "--cuda-graph"])

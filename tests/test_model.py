"""CTransCNN against the reference spec: exact parameter counts, shapes, and each component re-stated
functionally from the spec's formulas (sections 1-2), so the modules are checked by an independent oracle."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from ctranscnn import create_model, list_models
from ctranscnn.models.checkpoint import CheckpointMismatch, load_authors_checkpoint
from ctranscnn.models.complexity import model_complexity
from ctranscnn.models.ctranscnn import C2T, T2C, Attention, CTransCNNConfig, MBRBlock, TransformerLayer, token_grid


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------- sizes (spec §1.9)
@pytest.mark.parametrize("classes,total", [(14, 33_994_786), (11, 33_992_707), (7, 33_989_991)])
def test_tiny_parameter_counts(classes: int, total: int) -> None:
    model = create_model("ctranscnn_tiny", classes)
    assert n_params(model.backbone) == 33_985_392
    assert n_params(model) == total
    assert n_params(create_model("ctranscnn_tiny", classes, keep_unused_fc=False)) == total - (2 * classes * classes + classes)


def test_modules_off_is_conformer_tiny() -> None:
    conformer = create_model("conformer_tiny", 14)
    assert n_params(conformer.backbone) == 22_882_704
    # published Conformer-tiny with a 1000-class head (two linear heads): 23,524,704
    assert n_params(create_model("conformer_tiny", 1000, keep_unused_fc=False)) == 23_524_704
    same = create_model("ctranscnn_tiny", 14, mmaef=False, mbr=False, iim=False)
    assert list(same.state_dict()) == list(conformer.state_dict())


@pytest.mark.parametrize("switch,delta", [
    ("mmaef", 12 * (2_366_592 - 1_774_464)),  # per-layer difference, 12 layers
])
def test_single_switch_parameter_delta(switch: str, delta: int) -> None:
    full = n_params(create_model("ctranscnn_tiny", 14).backbone)
    assert full - n_params(create_model("ctranscnn_tiny", 14, **{switch: False}).backbone) == delta


def test_gflops_match_spec() -> None:
    info = model_complexity(create_model("ctranscnn_tiny", 14))
    assert info["gflops_224"] == pytest.approx(2 * 11.2, rel=0.01)  # ≈11.2 GMACs (spec §1.9)
    assert model_complexity(create_model("conformer_tiny", 14))["gflops_224"] == pytest.approx(2 * 5.2, rel=0.02)


def test_feature_shapes_match_spec_table() -> None:
    model = create_model("ctranscnn_tiny", 14).eval()
    shapes: dict[str, tuple] = {}
    hooks = [model.backbone.conv_1.register_forward_hook(lambda m, i, o: shapes.__setitem__("conv_1", o[0].shape))]
    for i in range(2, 13):
        block = getattr(model.backbone, f"conv_trans_{i}")
        hooks.append(block.register_forward_hook(
            lambda m, inp, out, i=i: shapes.__setitem__(i, (tuple(out[0].shape), tuple(out[1].shape)))))
    with torch.no_grad():
        cnn, trans = model.forward_features(torch.randn(1, 3, 224, 224))
    assert tuple(shapes["conv_1"]) == (1, 64, 56, 56)
    expected_cnn = {2: 56, 3: 56, 4: 56, 5: 28, 6: 28, 7: 28, 8: 28, 9: 14, 10: 14, 11: 14, 12: 7}
    channels = {i: 64 if i <= 4 else 128 if i <= 8 else 256 for i in expected_cnn}
    for i, side in expected_cnn.items():
        assert shapes[i] == ((1, channels[i], side, side), (1, 197, 384)), i
    assert cnn.shape == (1, 256) and trans.shape == (1, 384)


@pytest.mark.parametrize("size", [(32, 32), (48, 80), (100, 120), (224, 160)])
def test_any_input_size(size: tuple[int, int]) -> None:
    model = create_model("ctranscnn_micro", 5)
    out = model(torch.randn(2, 3, *size))
    assert out.shape == (2, 5) and torch.isfinite(out).all()
    out.sum().backward()
    grid = token_grid(*size)
    tokens = model.backbone.trans_patch_conv(model.backbone.stem(torch.randn(1, 3, *size)))
    assert tuple(tokens.shape[-2:]) == grid


def test_registry_lists_presets() -> None:
    assert {"ctranscnn_tiny", "ctranscnn_mini", "ctranscnn_micro", "conformer_tiny", "conformer_mini"} <= set(list_models())
    with pytest.raises(KeyError, match="unknown model"):
        create_model("no_such_model", 3)
    with pytest.raises(ValueError, match="attention"):
        CTransCNNConfig(attention="relu")


# ---------------------------------------------------------------- components vs the spec's formulas
def bn_eval(x: torch.Tensor, m: torch.nn.BatchNorm2d) -> torch.Tensor:
    return F.batch_norm(x, m.running_mean, m.running_var, m.weight, m.bias, False, 0.0, m.eps)


def randomise(module: torch.nn.Module) -> None:
    """Non-trivial BN statistics and affine parameters (init has weight 1 / zero bn3, which hides bugs)."""
    g = torch.Generator().manual_seed(1)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=g))
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


@pytest.mark.parametrize("mbr,double_bn2", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("stride,residual", [(1, False), (2, True)])
def test_mbr_block_formula(mbr: bool, double_bn2: bool, stride: int, residual: bool) -> None:
    cin = 8 if residual else 16  # without a projection shortcut the identity needs cin == cout
    blk = MBRBlock(cin, 16, stride, 0.0, residual, mbr=mbr, double_bn2=double_bn2).eval()
    randomise(blk)
    x, f = torch.randn(2, cin, 12, 12), torch.randn(2, 4, 12, 12)
    a = F.relu(bn_eval(F.conv2d(x, blk.conv1.weight), blk.bn1))
    u = F.conv2d(a + f, blk.conv2.weight, stride=stride, padding=1)
    if not mbr:
        v = bn_eval(u, blk.bn2)
    else:
        v = (2 if double_bn2 else 1) * bn_eval(u, blk.bn2) + F.conv2d(u, blk.conv_64_16.weight)
    x2 = F.relu(v)
    m = bn_eval(F.conv2d(x2, blk.conv3.weight), blk.bn3)
    idt = bn_eval(F.conv2d(x, blk.residual_conv.weight, stride=stride), blk.residual_bn) if residual else x
    s = bn_eval(F.conv2d(x, blk.conv_identity.weight, stride=stride), blk.bn_out) if mbr else 0
    y = F.relu(m + idt + s)
    with torch.no_grad():
        got_y, got_x2 = blk(x, f)
    torch.testing.assert_close(got_x2, x2)
    torch.testing.assert_close(got_y, y)


def test_bn2_runs_twice_in_training() -> None:
    blk = MBRBlock(16, 16).train()
    blk(torch.randn(2, 16, 6, 6))
    assert blk.bn2.num_batches_tracked.item() == 2 and blk.bn1.num_batches_tracked.item() == 1


@pytest.mark.parametrize("iim", [True, False])
def test_c2t_formula(iim: bool) -> None:
    m = C2T(4, 12, down=2, iim=iim).eval()
    randomise(m)
    x, x_t = torch.randn(2, 4, 6, 6), torch.randn(2, 10, 12)
    p = F.conv2d(x, m.conv_project.weight, m.conv_project.bias)
    if iim:
        g = torch.sigmoid(bn_eval(F.conv2d(p, m.conv1.weight, m.conv1.bias), m.bn1))
        p = p + F.conv2d(g, m.conv2.weight, m.conv2.bias)
    p = F.avg_pool2d(p, 2).flatten(2).transpose(1, 2)
    p = F.gelu(F.layer_norm(p, (12,), m.ln.weight, m.ln.bias, 1e-6))
    want = torch.cat([x_t[:, :1], p], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(m(x, x_t), want)
    assert m.ln.eps == 1e-6 and (not iim or m.bn1.eps == 1e-5)


@pytest.mark.parametrize("iim", [True, False])
def test_t2c_formula(iim: bool) -> None:
    m = T2C(12, 4, up=2, iim=iim).eval()
    randomise(m)
    x_t = torch.randn(2, 1 + 3 * 3, 12)
    r = x_t[:, 1:].transpose(1, 2).reshape(2, 12, 3, 3)
    r = F.relu(bn_eval(F.conv2d(r, m.conv_project.weight, m.conv_project.bias), m.bn))
    if iim:
        r = F.interpolate(r, size=(6, 6), mode="bilinear", align_corners=False)
        r = r + torch.sigmoid(F.conv2d(F.relu(F.conv2d(r, m.conv2.weight, m.conv2.bias)), m.conv3.weight, m.conv3.bias))
    else:
        r = r.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # nearest x2
    with torch.no_grad():
        torch.testing.assert_close(m(x_t, 3, 3), r)


def reference_attention(att: Attention, x: torch.Tensor, sigmoid: bool) -> torch.Tensor:
    b, n, d = x.shape
    h = att.heads
    qkv = x @ att.qkv.weight.T + att.qkv.bias
    q, k, v = (t.reshape(b, n, h, d // h).transpose(1, 2) for t in qkv.split(d, dim=-1))
    s = q @ k.transpose(-1, -2) / (d // h) ** 0.5
    w = torch.softmax(torch.sigmoid(s) if sigmoid else s, dim=-1)
    return (w @ v).transpose(1, 2).reshape(b, n, d) @ att.proj.weight.T + att.proj.bias


@pytest.mark.parametrize("mmaef,attention", [(True, "sigmoid_softmax"), (True, "softmax"), (False, "sigmoid_softmax")])
def test_transformer_layer_formula(mmaef: bool, attention: str) -> None:
    layer = TransformerLayer(24, 3, 4.0, True, 0.0, mmaef=mmaef, attention=attention).eval()
    x = torch.randn(2, 5, 24)
    sig = mmaef and attention == "sigmoid_softmax"  # Conformer layers always use plain softmax

    def ln(t: torch.Tensor, m: torch.nn.LayerNorm) -> torch.Tensor:
        return F.layer_norm(t, (24,), m.weight, m.bias, 1e-6)

    want = x + reference_attention(layer.attn, ln(x, layer.ln1), sig)
    if mmaef:
        want = want + reference_attention(layer.attn2, ln(want, layer.ln2), sig)
    last = layer.ln3 if mmaef else layer.ln2
    fc1, fc2 = layer.ffn.layers[0][0], layer.ffn.layers[1]
    want = want + F.gelu(ln(want, last) @ fc1.weight.T + fc1.bias) @ fc2.weight.T + fc2.bias
    with torch.no_grad():
        torch.testing.assert_close(layer(x), want)


def test_sigmoid_softmax_is_near_uniform() -> None:
    """Spec §1.5/§7.1: weights within a factor e of each other, whatever the logits."""
    att = Attention(16, 2, True, "sigmoid_softmax", 0.0)
    with torch.no_grad():
        att.qkv.weight.mul_(100)  # huge logits
        x = torch.randn(1, 9, 16)
        q, k, _ = att.qkv(x).reshape(1, 9, 3, 2, 8).permute(2, 0, 3, 1, 4)
        w = torch.softmax(torch.sigmoid(q @ k.transpose(-1, -2) * att.scale), dim=-1)
    assert (w.max(-1).values / w.min(-1).values).max() <= torch.e + 1e-4


def test_head_branches_and_fused_score() -> None:
    model = create_model("ctranscnn_micro", 6).eval()
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        cnn, trans = model.forward_features(x)
        branches = model.forward_head((cnn, trans))
        fused = model(x)
    z_c = cnn @ model.head.conv_cls_head.weight.T + model.head.conv_cls_head.bias
    z_t = trans @ model.head.trans_cls_head.weight.T + model.head.trans_cls_head.bias
    torch.testing.assert_close(branches["cnn"], z_c)
    torch.testing.assert_close(branches["trans"], z_t)
    torch.testing.assert_close(torch.sigmoid(fused), torch.sigmoid(0.9 * z_c + 0.1 * z_t))
    assert model.branch_names == ("cnn", "trans") and model.num_classes == 6
    # the CNN feature is the global average of the last block's map; the transformer one the normed class token
    maps: list[torch.Tensor] = []
    model.backbone.conv_trans_6.register_forward_hook(lambda m, i, o: maps.append(o))
    with torch.no_grad():
        model.forward_features(x)
    x_map, tokens = maps[0]
    torch.testing.assert_close(cnn, x_map.mean(dim=(2, 3)))
    torch.testing.assert_close(trans, F.layer_norm(tokens, (64,), model.backbone.trans_norm.weight,
                                                   model.backbone.trans_norm.bias, 1e-5)[:, 0])
    half = create_model("ctranscnn_micro", 6, fusion_weight=0.5)
    half.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(half.eval()(x), 0.5 * z_c + 0.5 * z_t)


def test_doubled_class_token() -> None:
    """The C2T output is added to the tokens, so the class-token slot entering each MMAEF layer holds 2*cls."""
    model = create_model("ctranscnn_micro", 2).eval()
    block = model.backbone.conv_trans_2
    seen: list[torch.Tensor] = []
    block.trans_block.register_forward_pre_hook(lambda m, a: seen.append(a[0]))
    entering: list[torch.Tensor] = []
    block.register_forward_pre_hook(lambda m, a: entering.append(a[1]))
    with torch.no_grad():
        model(torch.randn(2, 3, 64, 64))
    torch.testing.assert_close(seen[0][:, 0], 2 * entering[0][:, 0])


# ---------------------------------------------------------------- init and drop path (spec §1.7)
def test_initialisation() -> None:
    model = create_model("ctranscnn_tiny", 14)
    bb = model.backbone
    for name, m in model.named_modules():
        if isinstance(m, MBRBlock):
            assert torch.all(m.bn3.weight == 0), name
            assert torch.all(m.bn1.weight == 1), name
        if isinstance(m, torch.nn.Linear):
            assert m.weight.abs().max() <= 2.0 and abs(m.weight.std().item() - 0.02) < 0.002, name
            assert torch.all(m.bias == 0), name
        if isinstance(m, torch.nn.LayerNorm):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0), name
    # conv biases keep PyTorch's default (uniform, non-zero)
    assert bb.trans_patch_conv.bias.abs().sum() > 0
    conv = bb.conv_trans_5.cnn_block.conv1.weight  # kaiming normal, fan_out: std = sqrt(2 / (out * k * k))
    assert conv.std().item() == pytest.approx((2 / conv.shape[0]) ** 0.5, rel=0.1)
    assert abs(bb.cls_token.std().item() - 0.02) < 0.005


def test_drop_path_schedule() -> None:
    bb = create_model("ctranscnn_tiny", 14).backbone
    dpr = torch.linspace(0, 0.1, 12).tolist()
    assert isinstance(bb.trans_1.attn.drop_path, torch.nn.Identity)
    for i in range(2, 13):
        blk = getattr(bb, f"conv_trans_{i}")
        for mod in (blk.trans_block.attn, blk.trans_block.attn2, blk.trans_block.ffn, blk.fusion_block):
            assert mod.drop_path.drop_prob == pytest.approx(dpr[i - 1])
        assert isinstance(blk.cnn_block.drop_path, torch.nn.Identity)
    assert isinstance(bb.conv_1.drop_path, torch.nn.Identity)


# ---------------------------------------------------------------- authors' checkpoints
def authors_keys(shared_dir) -> dict[str, tuple[int, ...]]:
    text = (shared_dir / "data/reference/authors_state_dict_keys_tiny_14cls.txt").read_text()
    return {key: tuple(json.loads(shape.replace("(", "[").replace(")", "]").replace(",]", "]")))
            for key, shape in (line.split("\t") for line in text.splitlines() if line)}


def test_state_dict_has_exactly_the_authors_keys(shared_dir) -> None:
    keys = authors_keys(shared_dir)
    assert len(keys) == 1096
    own = {k: tuple(v.shape) for k, v in create_model("ctranscnn_tiny", 14).state_dict().items()}
    assert own == keys


def test_authors_checkpoint_round_trip(tmp_path) -> None:
    source = create_model("ctranscnn_micro", 4).eval()
    randomise(source)
    ckpt = {"meta": {"CLASSES": ["a", "b", "c", "d"], "epoch": 3},
            "state_dict": {k: v.clone() for k, v in source.state_dict().items()}}
    path = tmp_path / "epoch_3.pth"
    torch.save(ckpt, path)
    target = create_model("ctranscnn_micro", 4).eval()
    meta = load_authors_checkpoint(target, path)
    assert meta["CLASSES"] == ["a", "b", "c", "d"]
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(source(x), target(x))

    missing = dict(ckpt, state_dict={k: v for k, v in ckpt["state_dict"].items() if k != "head.fc.bias"})
    torch.save(missing, path)
    with pytest.raises(CheckpointMismatch, match=r"missing key head\.fc\.bias"):
        load_authors_checkpoint(target, path)
    bad = dict(ckpt["state_dict"], **{"backbone.conv_1.conv1.weight": torch.zeros(3, 16, 1, 1)})
    torch.save({"state_dict": bad}, path)
    with pytest.raises(CheckpointMismatch, match=r"backbone\.conv_1\.conv1\.weight: \(3, 16, 1, 1\)"):
        load_authors_checkpoint(target, path)


# ---------------------------------------------------------------- CLI
def test_info_cli_json() -> None:
    out = subprocess.run([sys.executable, "-m", "ctranscnn", "info", "--model", "ctranscnn_tiny", "--num-classes", "14",
                          "--json"], capture_output=True, text=True, check=True).stdout
    info = json.loads(out)
    assert (info["params_total"], info["params_backbone"], info["params_head"]) == (33_994_786, 33_985_392, 9_394)
    assert info["gflops_224"] == pytest.approx(22.43, rel=0.01)
    out = subprocess.run([sys.executable, "-m", "ctranscnn", "info", "--model", "ctranscnn_tiny", "--num-classes", "14",
                          "--set", "mmaef=false", "mbr=false", "iim=false", "--json"],
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out)["params_backbone"] == 22_882_704

"""CTransCNN (Wu et al., KBS 2023), behaviour for behaviour as the authors' mmcls code.

Module and parameter names follow the authors' state dict (`backbone.*`, `head.*`), so their checkpoints
load strictly (see ctranscnn.models.checkpoint). Section numbers refer to the reference spec
(shared/docs/reference_spec.md). The three paper modules are switchable; off means the Conformer
counterpart, so `mmaef=mbr=iim=False` is exactly Conformer-tiny (Peng et al., ICCV 2021).

Owns the architecture, its presets and registered factories, and the speed switches chosen when the model is
built (`FAST_SWITCHES`, applied by `create_model(..., fast=True)`). Four things share the word "fuse" in the
literature; here each has one name:
- fused logits: `fuse_logits`, the test-time score w * cnn + (1 - w) * trans (`fusion_weight`);
- `fusion_block`: the authors' name (kept: checkpoint keys) of a coupled block's second MBR block, which takes
  T2C's map (`t2c_map`);
- BN folding: BatchNorms folded into convolutions for inference (ctranscnn.models.folding, `fold_for_inference`);
- the fast gate: C2T's gate with BN statistics from its input's moments (switch `fast_c2t_gate`, c2t_gate.py).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from typing import Literal, get_args

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath

from ctranscnn.models.c2t_gate import fast_gate_tokens
from ctranscnn.registry import register_model

AttentionMode = Literal["sigmoid_softmax", "softmax"]
ATTENTION_MODES = get_args(AttentionMode)


@dataclass(frozen=True)
class CTransCNNConfig:
    embed_dims: int = 384
    depths: int = 12  # transformer layers: trans_1 + (depths - 1) coupled blocks; multiple of 3
    num_heads: int = 6
    channel_ratio: int = 1
    base_channels: int = 64  # stage channels = base * ratio * (1, 2, 4)
    stem_channels: int = 64  # fixed at 64 in the authors' code; smaller only for CPU demo presets
    patch_size: int = 16
    # stride of stage 3's first block; the authors' 2. With 1, stage 3 keeps stage 2's /8 map and patch 8 gives
    # the transformer the /8 token grid that IIM couples to it: 8 x 8 tokens at 64 px (CPU demo presets only)
    stage3_stride: int = 2
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    drop_path_rate: float = 0.1
    # paper modules (False = Conformer counterpart)
    mmaef: bool = True
    mbr: bool = True
    iim: bool = True
    # authors' quirks, each switchable (spec §7 and §8)
    attention: AttentionMode = "sigmoid_softmax"  # in MMAEF layers; Conformer layers always use softmax
    double_bn2: bool = True  # MBR: bn2 applied twice (2*BN(u) + conv1x1(u))
    fusion_weight: float = 0.9  # test-time fused logit = w * cnn + (1 - w) * trans
    keep_unused_fc: bool = True  # the authors' head carries a never-used Linear(2C -> C)
    # speed switches: same parameters, same numbers up to float rounding (tests/test_fast_paths.py)
    fast_c2t: bool = False  # C2T's 1x1 convs composed and moved after the pooling (exact algebra)
    # training: C2T gate's BN statistics from its input's moments, sigmoid + pooling in one step (c2t_gate.py)
    fast_c2t_gate: bool = False
    fast_t2c: bool = False  # T2C's projection as a Linear on the tokens
    fast_attention: bool = False  # one-pass sigmoid-softmax; softmax mode via F.scaled_dot_product_attention

    def __post_init__(self) -> None:
        if self.depths % 3 or self.depths < 6:
            raise ValueError(f"depths must be a multiple of 3 and >= 6, got {self.depths}")
        if self.stage3_stride not in (1, 2):
            raise ValueError(f"stage3_stride must be 1 or 2, got {self.stage3_stride}")
        if self.patch_size % (8 * self.stage3_stride):  # IIM's stage-3 down factor must stay a whole number
            raise ValueError(f"patch_size must be a multiple of {8 * self.stage3_stride} with stage3_stride "
                             f"{self.stage3_stride}, got {self.patch_size}")
        if self.embed_dims % self.num_heads:
            raise ValueError(f"embed_dims {self.embed_dims} not divisible by num_heads {self.num_heads}")
        if self.attention not in ATTENTION_MODES:
            raise ValueError(f"attention must be one of {ATTENTION_MODES}, got {self.attention!r}")
        if not 0.0 <= self.fusion_weight <= 1.0:
            raise ValueError(f"fusion_weight must lie in [0, 1], got {self.fusion_weight}")


def bn(channels: int, eps: float = 1e-6) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=eps)


class MBRBlock(nn.Module):
    """Multi-branch residual block (spec §1.3); with `mbr=False` Conformer's bottleneck ConvBlock."""

    def __init__(self, cin: int, cout: int, stride: int = 1, drop_path: float = 0.0,
                 residual_conv: bool = False, mbr: bool = True, double_bn2: bool = True):
        super().__init__()
        mid = cout // 4
        self.mbr, self.double_bn2 = mbr, double_bn2
        self.conv1 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn1 = bn(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, bias=False)
        self.bn2 = bn(mid)
        self.conv3 = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn3 = bn(cout)
        if mbr:
            self.conv_identity = nn.Conv2d(cin, cout, 1, stride, bias=False)
            self.bn_out = bn(cout)
            self.conv_64_16 = nn.Conv2d(mid, mid, 1, bias=False)  # the authors' name; really mid -> mid
        if residual_conv:
            self.residual_conv = nn.Conv2d(cin, cout, 1, stride, bias=False)
            self.residual_bn = bn(cout)
        self.with_residual_conv = residual_conv
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, t2c_map: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (block output, the conv2 activation that C2T taps)."""
        a = F.relu(self.bn1(self.conv1(x)))
        u = self.conv2(a if t2c_map is None else a + t2c_map)  # T2C's map enters before the 3x3 conv
        if not self.mbr:
            v = self.bn2(u)
        elif self.double_bn2:
            # The same BN module runs twice: its running stats are updated twice per step, as the authors'.
            v = self.bn2(u) + self.conv_64_16(u) + self.bn2(u)
        else:
            v = self.bn2(u) + self.conv_64_16(u)
        x2 = F.relu(v)
        y = self.drop_path(self.bn3(self.conv3(x2)))
        identity = self.residual_bn(self.residual_conv(x)) if self.with_residual_conv else x
        y = y + identity
        if self.mbr:
            y = y + self.bn_out(self.conv_identity(x))
        return F.relu(y), x2


def pool_tokens(x: torch.Tensor, down: int) -> torch.Tensor:
    """AvgPool_down (non-overlapping windows) then B x C x h x w -> B x hw x C."""
    return (F.avg_pool2d(x, down) if down > 1 else x).flatten(2).transpose(1, 2)


def class_token_first(tokens: torch.Tensor, x_t: torch.Tensor, ln: nn.LayerNorm) -> torch.Tensor:
    """C2T's output: GELU(LN(tokens)) behind the current class token."""
    return torch.cat([x_t[:, :1], F.gelu(ln(tokens))], dim=1)


class C2T(nn.Module):
    """CNN feature map -> tokens (spec §1.4); `iim=False` is Conformer's FCUDown."""

    def __init__(self, c: int, dims: int, down: int, iim: bool = True, fast: bool = False, fast_gate: bool = False):
        super().__init__()
        self.iim, self.down, self.fast, self.fast_gate = iim, down, fast or fast_gate, fast_gate
        self.conv_project = nn.Conv2d(c, dims, 1)
        if iim:
            self.conv1 = nn.Conv2d(dims, dims, 1)
            self.bn1 = nn.BatchNorm2d(dims)  # eps 1e-5 here, unlike the other BNs
            self.conv2 = nn.Conv2d(dims, dims, 1)
        self.sample_pooling = nn.AvgPool2d(down, down)
        self.ln = nn.LayerNorm(dims, eps=1e-6)

    def forward(self, x: torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
        if self.fast:
            p = self.tokens_fast(x)
        else:
            p = self.conv_project(x)
            if self.iim:
                p = p + self.conv2(torch.sigmoid(self.bn1(self.conv1(p))))  # additive "gate", full resolution
            p = self.sample_pooling(p).flatten(2).transpose(1, 2)
        return class_token_first(p, x_t, self.ln)

    def tokens_fast(self, x: torch.Tensor) -> torch.Tensor:
        """The same tokens at a fraction of the cost. 1x1 convs commute with average pooling
        (AvgPool(W s + b) = W AvgPool(s) + b), so conv_project and conv2 become Linears on the pooled tokens;
        conv1(conv_project(x)) is one c->D conv whose weight W1 Wp and bias W1 bp + b1 are composed on every
        call, so gradients reach the original parameters; bn1 sees the very same full-resolution tensor."""
        wp = self.conv_project.weight.flatten(1)
        p = F.linear(pool_tokens(x, self.down), wp, self.conv_project.bias)
        if self.iim:
            w1 = self.conv1.weight.flatten(1)
            bias = self.conv1.bias + w1 @ self.conv_project.bias  # matmul, not addmv: ONNX-exportable
            if self.fast_gate and self.bn1.training:
                gate = fast_gate_tokens(x, w1 @ wp, bias, self.bn1, self.down).flatten(2).transpose(1, 2)
            else:
                gate = pool_tokens(torch.sigmoid(self.bn1(F.conv2d(x, (w1 @ wp)[:, :, None, None], bias))), self.down)
            p = p + F.linear(gate, self.conv2.weight.flatten(1), self.conv2.bias)
        return p


class T2C(nn.Module):
    """Tokens -> CNN feature map (spec §1.4); `iim=False` is Conformer's FCUUp (nearest upsampling)."""

    def __init__(self, dims: int, c: int, up: int, iim: bool = True, fast: bool = False):
        super().__init__()
        self.iim, self.up, self.fast = iim, up, fast
        self.conv_project = nn.Conv2d(dims, c, 1)
        self.bn = bn(c)
        if iim:
            self.conv2 = nn.Conv2d(c, c, 1)
            self.conv3 = nn.Conv2d(c, c, 1)

    def forward(self, x_t: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, _, d = x_t.shape
        if self.fast:  # the 1x1 conv as a Linear on the tokens: no copy of the D-channel map, fast GEMM
            r = F.linear(x_t[:, 1:], self.conv_project.weight.flatten(1), self.conv_project.bias)
            r = r.transpose(1, 2).reshape(b, -1, h, w)  # a channels-last view, no copy
        else:
            r = self.conv_project(x_t[:, 1:].transpose(1, 2).reshape(b, d, h, w))
        return upsample_map(F.relu(self.bn(r)), self.up, (self.conv2, self.conv3) if self.iim else None)


def upsample_map(r: torch.Tensor, up: int, iim: tuple[nn.Conv2d, nn.Conv2d] | None) -> torch.Tensor:
    """T2C's last step: nearest upsampling (Conformer), or with IIM's (conv2, conv3) bilinear upsampling plus a
    gate sigmoid(conv3(relu(conv2(r)))) that adds a value in (0, 1)."""
    size = (r.shape[-2] * up, r.shape[-1] * up)
    if iim is None:
        return F.interpolate(r, size=size)
    if r.is_cuda and torch.are_deterministic_algorithms_enabled() and not \
            torch.is_deterministic_algorithms_warn_only_enabled():
        r = bilinear_as_matmul(r, up)  # train.deterministic strict: CUDA's bilinear backward has no such kernel
    else:
        r = F.interpolate(r, size=size, mode="bilinear", align_corners=False)
    conv2, conv3 = iim
    return r + torch.sigmoid(conv3(F.relu(conv2(r))))


@functools.lru_cache(maxsize=64)
def bilinear_matrix(n: int, up: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(n * up) x n weights of F.interpolate's bilinear upsampling by `up` along one axis (align_corners=False):
    output o reads source (o + 0.5) / up - 0.5, clamped at 0, between its two neighbours. Cached: built once per
    shape, so a CUDA-graph capture finds it on the device."""
    src = ((torch.arange(n * up, dtype=torch.float64) + 0.5) / up - 0.5).clamp(min=0)
    lo = src.floor().long()
    hi = (lo + 1).clamp(max=n - 1)
    frac = src - lo
    m = torch.zeros(n * up, n, dtype=torch.float64)
    rows = torch.arange(n * up)
    m.index_put_((rows, lo), 1 - frac, accumulate=True)
    m.index_put_((rows, hi), frac, accumulate=True)
    return m.to(device, dtype)


def bilinear_as_matmul(r: torch.Tensor, up: int) -> torch.Tensor:
    """F.interpolate(r, scale `up`, 'bilinear') as two matmuls, whose backward is deterministic on CUDA
    (the same function up to float rounding)."""
    h, w = r.shape[-2:]
    mh = bilinear_matrix(h, up, r.device, r.dtype)
    mw = bilinear_matrix(w, up, r.device, r.dtype)
    return torch.matmul(torch.matmul(mh, r), mw.t())


class Attention(nn.Module):
    """Multi-head self-attention; `sigmoid_softmax` weights are softmax(sigmoid(QK^T / sqrt(d)))."""

    def __init__(self, dims: int, heads: int, qkv_bias: bool, mode: str, drop_path: float, fast: bool = False):
        super().__init__()
        self.heads, self.mode, self.fast = heads, mode, fast
        self.scale = (dims // heads) ** -0.5
        self.qkv = nn.Linear(dims, dims * 3, bias=qkv_bias)
        self.proj = nn.Linear(dims, dims)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if self.fast:
            out = self.fast_weights_times_v(q, k, v)
        else:
            s = (q @ k.transpose(-2, -1)) * self.scale
            if self.mode == "sigmoid_softmax":
                s = torch.sigmoid(s)
            out = s.softmax(dim=-1) @ v
        return self.drop_path(self.proj(out.transpose(1, 2).reshape(b, n, d)))

    def fast_weights_times_v(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if self.mode == "softmax":
            return F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        # sigmoid bounds the logits to (0, 1), so exp cannot overflow: the softmax needs no max pass. In place
        # where autograd allows (matmul does not keep its output; sigmoid keeps its own, so exp must not overwrite
        # it when gradients are recorded): B x heads x N x N buffers are the largest the layer writes.
        e = torch.matmul(q * self.scale, k.transpose(-2, -1)).sigmoid_()
        e = e.exp_() if not torch.is_grad_enabled() else e.exp()
        return torch.matmul(e, v) / e.sum(dim=-1, keepdim=True)


class FFN(nn.Module):
    """mmcv FFN layout (`layers.0.0`, `layers.1`) so the authors' keys map one to one."""

    def __init__(self, dims: int, hidden: int, drop_path: float):
        super().__init__()
        self.layers = nn.Sequential(nn.Sequential(nn.Linear(dims, hidden), nn.GELU()), nn.Linear(hidden, dims))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop_path(self.layers(x))


class TransformerLayer(nn.Module):
    """MMAEF layer (spec §1.5): pre-norm, two attention sublayers, FFN. `mmaef=False`: Conformer's layer."""

    def __init__(self, dims: int, heads: int, mlp_ratio: float, qkv_bias: bool, drop_path: float,
                 mmaef: bool = True, attention: str = "sigmoid_softmax", fast_attention: bool = False):
        super().__init__()
        self.mmaef = mmaef
        mode = attention if mmaef else "softmax"
        self.ln1 = nn.LayerNorm(dims, eps=1e-6)
        self.attn = Attention(dims, heads, qkv_bias, mode, drop_path, fast_attention)
        if mmaef:
            self.attn2 = Attention(dims, heads, qkv_bias, mode, drop_path, fast_attention)
            self.ln3 = nn.LayerNorm(dims, eps=1e-6)
        self.ln2 = nn.LayerNorm(dims, eps=1e-6)
        self.ffn = FFN(dims, int(dims * mlp_ratio), drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        if self.mmaef:
            x = x + self.attn2(self.ln2(x))
            return x + self.ffn(self.ln3(x))
        return x + self.ffn(self.ln2(x))


class IIMBlock(nn.Module):
    """One coupled CNN/transformer block (spec §1.4, IIMBlock)."""

    def __init__(self, cfg: CTransCNNConfig, cin: int, cout: int, stride: int, residual_conv: bool,
                 down: int, drop_path: float, last_fusion: bool):
        super().__init__()
        mbr = dict(mbr=cfg.mbr, double_bn2=cfg.double_bn2)
        self.down = down
        self.cnn_block = MBRBlock(cin, cout, stride, 0.0, residual_conv, **mbr)
        self.fusion_block = MBRBlock(cout, cout, 2 if last_fusion else 1, drop_path, last_fusion, **mbr)
        self.squeeze_block = C2T(cout // 4, cfg.embed_dims, down, cfg.iim, cfg.fast_c2t, cfg.fast_c2t_gate)
        self.expand_block = T2C(cfg.embed_dims, cout // 4, down, cfg.iim, cfg.fast_t2c)
        self.trans_block = TransformerLayer(cfg.embed_dims, cfg.num_heads, cfg.mlp_ratio, cfg.qkv_bias,
                                            drop_path, cfg.mmaef, cfg.attention, cfg.fast_attention)

    def forward(self, x: torch.Tensor, x_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, x2 = self.cnn_block(x)
        h, w = x2.shape[-2:]
        # C2T output is *added* to the tokens, so the class token slot receives 2*cls (Conformer quirk).
        x_t = self.trans_block(self.squeeze_block(x2, x_t) + x_t)
        t2c_map = self.expand_block(x_t, h // self.down, w // self.down)
        return self.fusion_block(x, t2c_map)[0], x_t


def _init_module(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")  # biases keep PyTorch's default
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, MBRBlock):
        nn.init.zeros_(m.bn3.weight)  # zero-init last BN


class CTransCNNBackbone(nn.Module):
    """Returns (GAP of the CNN branch: B x C3, LayerNorm'd class token: B x D)."""

    def __init__(self, cfg: CTransCNNConfig):
        super().__init__()
        self.cfg = cfg
        d, s = cfg.embed_dims, cfg.stem_channels
        c1 = cfg.base_channels * cfg.channel_ratio
        c2, c3 = 2 * c1, 4 * c1
        self.trans_down = cfg.patch_size // 4
        self.num_features = (c3, d)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.conv1 = nn.Conv2d(3, s, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(s)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        mbr = dict(mbr=cfg.mbr, double_bn2=cfg.double_bn2)
        self.conv_1 = MBRBlock(s, c1, 1, 0.0, True, **mbr)
        self.trans_patch_conv = nn.Conv2d(s, d, self.trans_down, self.trans_down)
        dpr = torch.linspace(0, cfg.drop_path_rate, cfg.depths).tolist()
        self.trans_1 = TransformerLayer(d, cfg.num_heads, cfg.mlp_ratio, cfg.qkv_bias, dpr[0], cfg.mmaef,
                                        cfg.attention, cfg.fast_attention)
        per_stage = cfg.depths // 3
        stage_strides = (1, 2, cfg.stage3_stride)  # each stage's first block; IIM's down factor is their product
        self.num_blocks = cfg.depths + 1  # blocks are numbered 2 .. depths, as conv_trans_{i}
        for i in range(2, self.num_blocks):
            stage = (i - 2 + 1) // per_stage  # stage 0 holds blocks 2..per_stage, then per_stage blocks each
            first = i in (per_stage + 1, 2 * per_stage + 1)
            cin, cout = [(c1, c1), (c1 if first else c2, c2), (c2 if first else c3, c3)][stage]
            block = IIMBlock(cfg, cin, cout, stride=stage_strides[stage] if first else 1, residual_conv=first,
                             down=self.trans_down // math.prod(stage_strides[:stage + 1]), drop_path=dpr[i - 1],
                             last_fusion=i == cfg.depths)
            self.add_module(f"conv_trans_{i}", block)
        self.trans_norm = nn.LayerNorm(d)  # eps 1e-5, unlike the layers' 1e-6
        self.init_weights()

    def init_weights(self) -> None:
        """The authors' effective initialisation (spec §1.7). `apply` visits children before parents, so the
        zero-init of each MBR block's last BN comes after the generic BN init, as in the authors' code."""
        self.apply(_init_module)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def blocks(self) -> list[IIMBlock]:
        return [getattr(self, f"conv_trans_{i}") for i in range(2, self.num_blocks)]

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        # Corner padding (right/bottom) to a multiple of the token stride, like mmcv's AdaptivePadding.
        h, w = x.shape[-2:]
        k = self.trans_down
        return F.pad(x, [0, -w % k, 0, -h % k])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x0 = self.stem(x)
        x = self.conv_1(x0)[0]
        x_t = self.trans_patch_conv(x0).flatten(2).transpose(1, 2)  # tokens come from the stem map
        x_t = self.trans_1(torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x_t], dim=1))
        for block in self.blocks():
            x, x_t = block(x, x_t)
        return x.mean(dim=(2, 3)), self.trans_norm(x_t)[:, 0]


class CTransCNNHead(nn.Module):
    """Two linear classifiers (spec §2); `fc` exists in the authors' checkpoints but is never used."""

    def __init__(self, in_channels: tuple[int, int], num_classes: int, keep_unused_fc: bool = True):
        super().__init__()
        self.conv_cls_head = nn.Linear(in_channels[0], num_classes)
        self.trans_cls_head = nn.Linear(in_channels[1], num_classes)
        if keep_unused_fc:
            self.fc = nn.Linear(2 * num_classes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, feats: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"cnn": self.conv_cls_head(feats[0]), "trans": self.trans_cls_head(feats[1])}


class CTransCNN(nn.Module):
    """Backbone + head with the uniform model API of ctranscnn.registry."""

    branch_names = ("cnn", "trans")

    def __init__(self, num_classes: int, cfg: CTransCNNConfig = CTransCNNConfig()):
        super().__init__()
        self.cfg, self.num_classes = cfg, num_classes
        self.backbone = CTransCNNBackbone(cfg)
        self.head = CTransCNNHead(self.backbone.num_features, num_classes, cfg.keep_unused_fc)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.backbone(x)

    def forward_head(self, feats: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.head(feats)

    def fuse_logits(self, branches: dict[str, torch.Tensor]) -> torch.Tensor:
        """Test-time fusion: sigmoid of this is the authors' score sigmoid(0.9 z_cnn + 0.1 z_trans)."""
        w = self.cfg.fusion_weight
        return w * branches["cnn"] + (1.0 - w) * branches["trans"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse_logits(self.forward_head(self.forward_features(x)))


# Presets. Only `tiny` exists in the authors' code; the smaller ones keep its layout at CPU-demo cost.
PRESETS: dict[str, CTransCNNConfig] = {
    "tiny": CTransCNNConfig(),
    # demo profile at 64 px: patch 8 with an unstrided stage 3 gives the transformer an 8 x 8 token grid (the
    # authors' patch 16 would leave 4 x 4); D 96 and channels 16/32/64 keep a run within the CPU budget
    "mini": CTransCNNConfig(embed_dims=96, depths=6, num_heads=3, base_channels=16, stem_channels=16, patch_size=8,
                            stage3_stride=1),
    "micro": CTransCNNConfig(embed_dims=64, depths=6, num_heads=2, base_channels=16, stem_channels=16),
}
CONFORMER = dict(mmaef=False, mbr=False, iim=False)
# Every speed switch of CTransCNNConfig, registered with each factory below: `create_model(..., fast=True)` applies
# them. For inference also see ctranscnn.models.folding.fold_for_inference.
FAST_SWITCHES = dict(fast_c2t=True, fast_c2t_gate=True, fast_t2c=True, fast_attention=True)


def build(preset: str, num_classes: int, **overrides) -> CTransCNN:
    return CTransCNN(num_classes, replace(PRESETS[preset], **overrides))


@register_model(fast_switches=FAST_SWITCHES, config=PRESETS["tiny"])
def ctranscnn_tiny(num_classes: int, **overrides) -> CTransCNN:
    """The authors' only architecture: D=384, 6 heads, 12 layers, channel ratio 1, patch 16."""
    return build("tiny", num_classes, **overrides)


@register_model(fast_switches=FAST_SWITCHES, config=PRESETS["mini"])
def ctranscnn_mini(num_classes: int, **overrides) -> CTransCNN:
    """CPU demo size (64 px): D=96, 3 heads, 6 layers, stem 16, stage channels 16/32/64, patch 8, stage 3 unstrided."""
    return build("mini", num_classes, **overrides)


@register_model(fast_switches=FAST_SWITCHES, config=PRESETS["micro"])
def ctranscnn_micro(num_classes: int, **overrides) -> CTransCNN:
    """Smoke/CI size: D=64, 2 heads, 6 layers, stage channels 16/32/64."""
    return build("micro", num_classes, **overrides)


@register_model(fast_switches=FAST_SWITCHES, config=replace(PRESETS["tiny"], **CONFORMER))
def conformer_tiny(num_classes: int, **overrides) -> CTransCNN:
    """Conformer-tiny (Peng et al., ICCV 2021): CTransCNN with MMAEF, MBR and IIM switched off."""
    return build("tiny", num_classes, **{**CONFORMER, **overrides})


@register_model(fast_switches=FAST_SWITCHES, config=replace(PRESETS["mini"], **CONFORMER))
def conformer_mini(num_classes: int, **overrides) -> CTransCNN:
    """Conformer at the `mini` size: the ablation/comparison counterpart of ctranscnn_mini."""
    return build("mini", num_classes, **{**CONFORMER, **overrides})


@register_model(fast_switches=FAST_SWITCHES, config=replace(PRESETS["micro"], **CONFORMER))
def conformer_micro(num_classes: int, **overrides) -> CTransCNN:
    """Conformer at the `micro` size: the smoke-profile counterpart of ctranscnn_micro."""
    return build("micro", num_classes, **{**CONFORMER, **overrides})


def token_grid(height: int, width: int, patch_size: int = 16) -> tuple[int, int]:
    """Token grid for an input size (stem /4, corner padding, then the token stride)."""
    def side(n: int) -> int:
        n = (n + 2 * 3 - 7) // 2 + 1  # conv 7x7 s2 p3
        n = (n + 2 - 3) // 2 + 1  # maxpool 3 s2 p1
        return math.ceil(n / (patch_size // 4))
    return side(height), side(width)

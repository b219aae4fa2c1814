"""Engine units: config loading, the authors' LR schedule and parameter groups, resumable sampling, RNG state."""
from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from ctranscnn import create_model
from ctranscnn.engine.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from ctranscnn.engine.config import (PROFILES, ConfigError, RunConfig, config_hash, from_dict, load_config,
                                     resolve_model_name, to_dict)
from ctranscnn.engine.optim import build_optimizer, build_scheduler, lr_factor, no_decay_names
from ctranscnn.engine.sampling import EpochBatches, flip_mask

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


# ---------------------------------------------------------------- config


@pytest.mark.parametrize("name, classes_hint", [("paper_nih", "nih"), ("paper_ranzcr", "ranzcr"),
                                                ("paper_tcmtd", "list")])
def test_paper_configs_are_the_authors_recipe(name, classes_hint):
    cfg = load_config(CONFIGS / f"{name}.yaml")
    assert cfg.profile == "paper" and cfg.data.dataset == classes_hint
    assert (cfg.model.name, cfg.model.size) == ("ctranscnn_tiny", "")
    assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.betas, cfg.optim.eps) == (1e-3, 0.05, (0.5, 0.999), 1e-8)
    s = cfg.schedule
    assert (s.epochs, s.warmup_iters, s.warmup_ratio, s.min_lr_ratio) == (300, 6260, 1e-3, 0.01)
    assert (cfg.train.batch_size, cfg.data.image_size, cfg.data.hflip, cfg.loss.name) == (32, 224, True, "asl_focal")


def test_precedence_yaml_profile_then_set(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("profile: smoke\nschedule: {epochs: 7}\ntrain: {seed: 3}\nmodel: {overrides: {mmaef: false}}\n")
    cfg = load_config(path, {"train.batch_size": 4, "model.overrides.iim": False})
    assert cfg.schedule.epochs == PROFILES["smoke"]["schedule.epochs"]  # the profile beats the file
    assert cfg.train.seed == 3  # the file beats the defaults
    assert cfg.train.batch_size == 4  # --set beats the profile
    assert cfg.model.overrides == {"mmaef": False, "iim": False}
    assert load_config(path, {"profile": "paper"}).schedule.epochs == 7  # profile chosen on the command line


@pytest.mark.parametrize("overrides, message", [
    ({"train.batchsize": 4}, "unknown config key 'train.batchsize'"),
    ({"optim.lr": "fast"}, "optim.lr: expected float"),
    ({"train.seed": 1.5}, "train.seed: expected int"),
    ({"data.hflip": 1}, "data.hflip: expected bool"),
    ({"optim.betas": [0.9]}, "optim.betas: expected tuple"),
    ({"train.amp": "fp8"}, "train.amp must be one of"),
    ({"profile": "huge"}, "profile must be one of"),
    ({"loss.name": "mse"}, "loss.name must be one of"),
    ({"data.split": "random"}, "data.split must be one of"),
    ({"schedule": 3}, "'schedule' is a section"),
])
def test_bad_settings_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(None, overrides)


def test_unknown_key_in_file_names_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("optim:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=rf"{path}: unknown config key 'optim.learning_rate'"):
        load_config(path)


def test_typed_values_and_round_trip():
    cfg = load_config(None, {"optim.lr": 1, "optim.betas": [0.9, 0.99], "model.overrides.fusion_weight": 0.5})
    assert isinstance(cfg.optim.lr, float) and cfg.optim.betas == (0.9, 0.99)
    again = from_dict(to_dict(cfg))
    assert again == cfg and config_hash(again) == config_hash(cfg)
    moved = from_dict(to_dict(cfg))
    moved.data.root, moved.train.out_dir = "/elsewhere", "/tmp/x"
    assert config_hash(moved) == config_hash(cfg)  # paths do not change a run's numbers
    moved.train.seed = 1
    assert config_hash(moved) != config_hash(cfg)


def test_model_size_resolution():
    assert resolve_model_name(RunConfig().model) == "ctranscnn_tiny"
    m = RunConfig().model
    m.size = "micro"
    assert resolve_model_name(m) == "ctranscnn_micro"
    m.name, m.size = "conformer_tiny", "micro"
    assert resolve_model_name(m) == "conformer_micro"
    m.name, m.size = "resnet50", "micro"
    assert resolve_model_name(m) == "resnet50_mini"  # no resnet50_micro: next larger size
    m.name, m.size = "resnet50", "mini"
    assert resolve_model_name(m) == "resnet50_mini"
    m.name = "no_such_model"
    with pytest.raises(ConfigError, match="model.size 'mini'"):
        resolve_model_name(m)


def test_fast_switch_applies_to_ctranscnn_family_only():
    from ctranscnn.engine.setup import build_model
    from ctranscnn.models.ctranscnn import FAST_SWITCHES

    cfg = RunConfig()
    cfg.train.fast, cfg.model.size = True, "micro"
    model, name = build_model(cfg, 3)
    assert name == "ctranscnn_micro" and all(getattr(model.cfg, switch) for switch in FAST_SWITCHES)
    assert set(FAST_SWITCHES) == {"fast_c2t", "fast_c2t_gate", "fast_t2c", "fast_attention"}
    cfg.model.overrides = {"fast_attention": False}  # explicit overrides win
    assert not build_model(cfg, 3)[0].cfg.fast_attention
    cfg.model.name, cfg.model.overrides = "resnet34", {}
    assert build_model(cfg, 3)[1] == "resnet34_mini"  # baselines build unchanged
    assert PROFILES["demo"]["train.fast"] and PROFILES["smoke"]["train.fast"] and "train.fast" not in PROFILES["paper"]


@pytest.mark.filterwarnings("ignore::UserWarning")  # the 'paper' split's leakage warning
def test_fast_and_faithful_runs_start_alike(tmp_path):
    """train.fast builds the model once: for one seed both runs start from the same weights, draw the same
    drop-path masks, and so take the same first step (up to fp32 rounding of the fast paths)."""
    from ctranscnn.engine.rundir import RunDir
    from ctranscnn.engine.trainer import Trainer
    from tests.test_engine_run import make_fixture

    data = make_fixture(tmp_path / "data", sizes=(16, 8, 8))
    start, losses = {}, {}
    for fast in (False, True):
        cfg = load_config(None, {"profile": "smoke", "data.dataset": "list", "data.root": str(data),
                                 "data.lists": str(data / "lists"), "train.fast": fast, "train.progress": False})
        trainer = Trainer(cfg, RunDir(tmp_path / f"fast={fast}"))
        assert trainer.model_name == "ctranscnn_micro" and trainer.model.cfg.fast_c2t == fast
        start[fast] = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        assert trainer.steps_per_epoch == 1  # 16 images, batch 16: the epoch's loss is the first step's
        trainer.train_epoch(trainer.loaders()[0], 0)
        losses[fast] = trainer.state.epoch_loss[0] / trainer.state.epoch_loss[1]
    assert start[False].keys() == start[True].keys()
    assert all(torch.equal(start[False][k], start[True][k]) for k in start[False])
    assert losses[True] == pytest.approx(losses[False], rel=1e-6, abs=1e-7)


# ---------------------------------------------------------------- schedule and parameter groups


def mmcv_lr(i: int, base: float, total: int, warmup: int, ratio: float, min_ratio: float) -> float:
    """mmcv 1.x CosineAnnealingLrUpdaterHook(by_epoch=False, warmup='linear'), transcribed independently."""
    target = base * min_ratio
    regular = target + 0.5 * (base - target) * (math.cos(math.pi * i / total) + 1)  # annealing_cos
    if i >= warmup:
        return regular
    k = (1 - i / warmup) * (1 - ratio)  # get_warmup_lr, linear
    return regular * (1 - k)


def test_lr_schedule_matches_mmcv_at_chosen_steps():
    cfg = RunConfig()
    total = 1456 * 300  # NIH: 1,456 iterations per epoch at batch 32
    model = nn.Linear(2, 2)
    opt = build_optimizer(model, cfg.optim)
    sched = build_scheduler(opt, total, cfg.schedule)
    chosen = {0, 1, 3130, 6259, 6260, 6261, total // 2, total - 1}
    seen = {}
    for i in range(6262):
        if i in chosen:
            seen[i] = [g["lr"] for g in opt.param_groups]
        opt.step()
        sched.step()
    for i in chosen:
        want = mmcv_lr(i, 1e-3, total, 6260, 1e-3, 0.01)
        got = seen.get(i, [1e-3 * lr_factor(i, total, cfg.schedule)] * 2)
        assert got == pytest.approx([want, want], rel=1e-12), i
    assert seen[0][0] == pytest.approx(1e-6, rel=1e-9)  # warmup starts at lr * 1e-3
    assert 1e-3 * lr_factor(total, total, cfg.schedule) == pytest.approx(1e-5)  # ends at min_lr = lr * 0.01
    # halfway through warmup the rate is about half the cosine rate: (1 - 0.5 * 0.999)
    assert seen[3130][0] / mmcv_lr(3130, 1e-3, total, 0, 1e-3, 0.01) == pytest.approx(0.5005)


def test_scheduler_resumes_exactly():
    cfg = RunConfig()
    a = nn.Linear(2, 2)
    opt = build_optimizer(a, cfg.optim)
    sched = build_scheduler(opt, 100, cfg.schedule)
    for _ in range(37):
        opt.step()
        sched.step()
    opt2 = build_optimizer(a, cfg.optim)
    sched2 = build_scheduler(opt2, 100, cfg.schedule)
    opt2.load_state_dict(opt.state_dict())
    sched2.load_state_dict(sched.state_dict())
    assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups]


def test_decay_free_parameters_are_norms_biases_and_class_token():
    model = create_model("ctranscnn_micro", 5)
    skip = no_decay_names(model)
    names = dict(model.named_parameters())
    # Oracle: in CTransCNN every 1-D parameter is a norm weight/bias or a bias; the class token is 3-D.
    assert skip == {n for n, p in names.items() if p.ndim == 1} | {"backbone.cls_token"}
    assert {"backbone.bn1.weight", "backbone.trans_norm.bias", "head.conv_cls_head.bias"} <= skip
    assert not {"backbone.conv1.weight", "head.conv_cls_head.weight", "head.trans_cls_head.weight"} & skip
    groups = build_optimizer(model, RunConfig().optim).param_groups
    assert [g["weight_decay"] for g in groups] == [0.05, 0.0]
    assert sum(len(g["params"]) for g in groups) == len(names)
    assert {id(p) for p in groups[1]["params"]} == {id(names[n]) for n in skip}


# ---------------------------------------------------------------- sampling


def test_batches_cover_epoch_once_and_shard_over_ranks():
    n, batch = 23, 8
    single = EpochBatches(n, batch, seed=5)
    single.set_epoch(2)
    whole = list(single)
    assert [len(b) for b in whole] == [8, 8, 7]
    assert sorted(sum(whole, [])) == list(range(n))
    ranks = [EpochBatches(n, batch, seed=5, rank=r, world=3) for r in range(3)]
    for r in ranks:
        r.set_epoch(2)
    for b, parts in enumerate(zip(*ranks)):
        assert sorted(sum(parts, [])) == sorted(whole[b])  # the ranks split the same global batch
        # DDP averages the ranks' gradients of weight x (mean loss over their part): each image must count 1/N
        for r, p in zip(ranks, parts):
            assert r.weight(b) / (3 * len(p)) == pytest.approx(1 / len(whole[b]))
    single.set_epoch(2, start=2)
    assert list(single) == whole[2:]  # resuming skips the consumed batches
    single.set_epoch(3)
    assert list(single) != whole


def test_empty_share_of_short_last_batch_has_zero_weight():
    ranks = [EpochBatches(5, 4, seed=0, rank=r, world=2) for r in range(2)]
    last = [list(r)[-1] for r in ranks]
    assert [len(p) for p in last] == [1, 1] and [r.weight(1) for r in ranks] == [2.0, 0.0]


def test_flips_are_a_function_of_seed_and_epoch():
    a, b = flip_mask(1000, 0, 4), flip_mask(1000, 0, 4)
    assert (a == b).all() and 0.45 < a.mean() < 0.55
    assert (a != flip_mask(1000, 0, 5)).any() and (a != flip_mask(1000, 1, 4)).any()


# ---------------------------------------------------------------- checkpoints


def test_rng_state_round_trip_through_checkpoint(tmp_path):
    state = rng_state()
    save_checkpoint(tmp_path / "c.pt", {"rng": [state], "state": {"step": 3}})
    want = (random.random(), np.random.rand(), torch.rand(3))
    random.random(), np.random.rand(), torch.rand(5)  # move every generator on
    set_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"][0])
    got = (random.random(), np.random.rand(), torch.rand(3))
    assert got[0] == want[0] and got[1] == want[1] and torch.equal(got[2], want[2])
    assert '"step": 3' in (tmp_path / "c.json").read_text()


def test_load_checkpoint_rejects_foreign_files(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not a ctranscnn run checkpoint"):
        load_checkpoint(tmp_path / "x.pt")

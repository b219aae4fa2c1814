"""Issue 18's engine switches on CPU: reading the loss every N steps (same history, NaN still caught before a
checkpoint), train.deterministic strict/warn/off, train.cuda_graph refused without CUDA, data.num_workers='auto'."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math

import numpy as np
import pytest
import torch

from ctranscnn.engine import checkpoint as ckpt_io
from ctranscnn.engine.config import UNHASHED, ConfigError, _flatten, config_hash, load_config, to_dict
from ctranscnn.engine.rundir import RunDir
from ctranscnn.engine.setup import auto_workers, loader_workers
from ctranscnn.engine.trainer import Trainer
from tests.test_engine_run import SETS, fixture_config  # noqa: F401 - the module-scoped fixture

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # the 'paper' split's leakage warning
# 93 training images at batch 16: 6 steps per epoch, the last one of 13 images
SMALL = {**SETS, "schedule.epochs": 2, "train.checkpoint_every": 0, "eval.n_boot": 0}


@pytest.fixture(autouse=True)
def keep_determinism_flags():
    """seed_everything sets process-wide flags; put them back for the other tests of this process."""
    saved = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    bench, det = torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = bench, det


def fit(config, name: str, sets: dict | None = None, patch=None) -> tuple[Trainer, list[tuple[int, float]]]:
    torch.set_num_threads(1)
    cfg = load_config(config, {**SMALL, "train.run_name": name, **(sets or {})})
    trainer = Trainer(cfg, RunDir.for_config(cfg))
    reads: list[tuple[int, float]] = []
    trainer.on_sync = lambda step, loss: reads.append((step, loss))
    if patch:
        patch(trainer)
    trainer.fit()
    return trainer, reads


def test_reading_the_loss_every_n_steps_keeps_the_history(fixture_config):
    every, every_step = fit(fixture_config, "sync1")
    sparse, sparse_reads = fit(fixture_config, "sync4", {"train.sync_every": 4})
    # read after every step, and otherwise every 4 steps and at each epoch's end (6 steps per epoch)
    assert [s for s, _ in every_step] == list(range(1, 13))
    assert [s for s, _ in sparse_reads] == [4, 6, 10, 12]
    # the epoch mean from the per-step means (weighted by the images of each step: 16 x 5 + 13)
    sizes = np.array([16] * 5 + [13])
    for epoch, row in enumerate(every.state.history):
        steps = np.array([loss for _, loss in every_step[6 * epoch:6 * epoch + 6]])
        assert row["train_loss"] == pytest.approx(float((steps * sizes).sum() / sizes.sum()), rel=1e-12)
    for a, b in zip(every.state.history, sparse.state.history):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-12)
        assert {k: v for k, v in a.items() if k not in ("train_loss", "epoch_seconds")} == \
               {k: v for k, v in b.items() if k not in ("train_loss", "epoch_seconds")}
    # a window's mean is the mean of its steps' losses
    window = np.array([loss for _, loss in every_step[:4]])
    assert sparse_reads[0][1] == pytest.approx(float(window.mean()), rel=1e-12)


def nan_from_step(n: int):
    """Make the loss NaN from the n-th training step on (1-based)."""
    def patch(trainer: Trainer) -> None:
        loss_fn, calls = trainer.loss_fn, [0]

        def poisoned(branches, y):
            calls[0] += 1
            loss = loss_fn(branches, y)
            return loss * float("nan") if calls[0] >= n else loss
        trainer.loss_fn = poisoned
    return patch


def test_a_nan_between_reads_stops_the_run_before_any_checkpoint(fixture_config):
    with pytest.raises(FloatingPointError, match=r"epoch 1, steps 1-4 "):
        fit(fixture_config, "nan_window", {"train.sync_every": 4}, nan_from_step(3))
    cfg = load_config(fixture_config, {**SMALL, "train.sync_every": 4, "train.run_name": "nan_window"})
    assert not RunDir.for_config(cfg).checkpoint_file("last").exists()


def test_a_checkpoint_forces_a_read_so_no_nan_weights_are_saved(fixture_config):
    sets = {"train.sync_every": 100, "train.checkpoint_every": 2}
    with pytest.raises(FloatingPointError, match=r"epoch 1, steps 3-4 "):
        fit(fixture_config, "nan_ckpt", sets, nan_from_step(3))
    cfg = load_config(fixture_config, {**SMALL, **sets, "train.run_name": "nan_ckpt"})
    last = ckpt_io.load_checkpoint(RunDir.for_config(cfg).checkpoint_file("last"))
    assert last["state"]["step"] == 2
    assert all(torch.isfinite(v).all() for v in last["model"].values() if v.is_floating_point())


def test_deterministic_modes_train_and_agree_on_cpu(fixture_config):
    one = {"schedule.epochs": 1, "data.limit_train": 32}
    histories = {}
    for mode in ("strict", "warn", "off"):
        trainer, _ = fit(fixture_config, f"det_{mode}", {**one, "train.deterministic": mode})
        assert torch.are_deterministic_algorithms_enabled() == (mode != "off")
        assert torch.is_deterministic_algorithms_warn_only_enabled() == (mode == "warn")
        assert torch.backends.cudnn.benchmark == (mode == "off")
        histories[mode] = [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in trainer.state.history]
    assert np.isfinite(histories["strict"][0]["train_loss"])
    # CPU kernels are deterministic whatever the mode: the same numbers
    assert histories["strict"] == histories["warn"] == histories["off"]


def test_deterministic_accepts_the_old_booleans_and_keeps_old_hashes(fixture_config):
    assert load_config(None, {"train.deterministic": True}).train.deterministic == "warn"
    assert load_config(None, {"train.deterministic": False}).train.deterministic == "off"
    with pytest.raises(ConfigError, match="train.deterministic must be one of"):
        load_config(None, {"train.deterministic": "sometimes"})
    # The hash as it was computed before issue 18 (a bool, no cuda_graph / sync_every fields)
    cfg = load_config(fixture_config, {"train.sync_every": 7})
    flat = {k: v for k, v in _flatten(to_dict(cfg)).items()
            if k not in UNHASHED and k not in ("train.cuda_graph", "train.sync_every")}
    flat["train.deterministic"] = True
    old = hashlib.sha256(json.dumps(flat, sort_keys=True, default=str).encode()).hexdigest()
    assert config_hash(cfg) == old
    assert config_hash(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, deterministic="strict"))) != old
    assert config_hash(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, cuda_graph=True))) != old


def test_cuda_graph_needs_cuda(fixture_config):
    with pytest.raises(ConfigError, match="train.cuda_graph needs CUDA"):
        load_config(fixture_config, {"train.cuda_graph": True, "train.device": "cpu"})
    with pytest.raises(ConfigError, match="fp16"):
        load_config(fixture_config, {"train.cuda_graph": True, "train.amp": "fp16"})
    if not torch.cuda.is_available():  # device 'auto' on a machine without CUDA
        cfg = load_config(fixture_config, {**SMALL, "train.cuda_graph": True, "train.run_name": "graph"})
        with pytest.raises(ConfigError, match="train.cuda_graph needs CUDA"):
            Trainer(cfg, RunDir.for_config(cfg))


def test_auto_workers_rule():
    # ceil(target / per-worker rate), capped at cpus - 1, at least 1
    assert auto_workers(100.0, 937.5, cpus=16) == 10
    assert auto_workers(100.0, 1000.0, cpus=16) == 10
    assert auto_workers(10.0, 1000.0, cpus=4) == 3
    assert auto_workers(1e6, 937.5, cpus=16) == 1
    assert auto_workers(1e6, 937.5, cpus=1) == 1
    cfg = load_config(None, {"data.num_workers": "auto"})
    assert loader_workers(cfg, torch.device("cpu"), range(10)) == 0  # CPU: no worker processes
    assert loader_workers(load_config(None, {"data.num_workers": 3}), torch.device("cpu"), range(10)) == 3
    for bad in (-1, "many"):
        with pytest.raises(ConfigError, match="data.num_workers must be >= 0 or 'auto'"):
            load_config(None, {"data.num_workers": bad})
    assert math.isfinite(auto_workers(0.0, 937.5, cpus=8))  # a zero rate caps at cpus - 1


def test_strict_modes_bilinear_upsampling_is_f_interpolate():
    """T2C's deterministic (matmul) bilinear upsampling, used under strict on CUDA, against F.interpolate."""
    import torch.nn.functional as F

    from ctranscnn.models.ctranscnn import bilinear_as_matmul

    torch.manual_seed(0)
    for h, w, up in [(7, 5, 4), (14, 14, 4), (3, 8, 2), (1, 4, 4), (6, 6, 1)]:
        r = torch.randn(2, 3, h, w, dtype=torch.float64, requires_grad=True)
        want = F.interpolate(r, size=(h * up, w * up), mode="bilinear", align_corners=False)
        got = bilinear_as_matmul(r, up)
        grad = torch.randn_like(want)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
        torch.testing.assert_close(torch.autograd.grad(got, r, grad)[0], torch.autograd.grad(want, r, grad)[0],
                                   rtol=0, atol=1e-12)


def test_graph_path_logic_equals_eager_training(fixture_config, monkeypatch):
    """train.cuda_graph's engine logic on CPU, with the capture replaced by eager replays: the warm-ups are undone
    (weights, BN buffers, optimizer state, RNG), the scheduler fills the optimizer's lr tensors, the short last
    batch runs eagerly; the history must equal eager training's. (CPU has no capturable AdamW: the stand-in drops
    the flag and keeps the tensor learning rates.)"""
    import ctranscnn.engine.trainer as trainer_mod
    from ctranscnn.engine.optim import build_optimizer, build_scheduler

    adamw = torch.optim.AdamW

    class CpuAdamW(adamw):
        def __init__(self, *args, capturable: bool = False, **kwargs):
            super().__init__(*args, foreach=False, **kwargs)

    def eager_capture(step, device):
        for _ in range(3):  # bench.capture's warm-ups
            step()
        return step

    eager, _ = fit(fixture_config, "graph_ref")
    monkeypatch.setattr(torch.optim, "AdamW", CpuAdamW)
    monkeypatch.setattr(trainer_mod, "capture", eager_capture)
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device=None: torch.get_rng_state())
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device=None: torch.set_rng_state(state))
    captured = []

    def as_graph(trainer: Trainer) -> None:
        trainer.cfg.train.cuda_graph = True  # past the CUDA check of __init__
        trainer.optimizer = build_optimizer(trainer.model, trainer.cfg.optim, capturable=True)
        trainer.scheduler = build_scheduler(trainer.optimizer, trainer.total_steps, trainer.cfg.schedule)
        capture_step = trainer.capture_step
        trainer.capture_step = lambda x, y: captured.append(len(x)) or capture_step(x, y)

    graph, _ = fit(fixture_config, "graph_cpu", patch=as_graph)
    assert captured == [16]  # captured once, on a full batch
    assert torch.is_tensor(graph.optimizer.param_groups[0]["lr"])
    assert float(graph.optimizer.param_groups[0]["lr"]) == pytest.approx(graph.last_lr * graph.scheduler.lr_lambdas[0](
        graph.state.step) / graph.scheduler.lr_lambdas[0](graph.state.step - 1), rel=1e-6)
    for a, b in zip(eager.state.history, graph.state.history):
        for key in a:
            if key != "epoch_seconds":  # fp32 lr tensors against float rates: rounding only
                assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), key

"""Multi-GPU slots as a function of a (faked) device list: slot assignment, worker pinning, the train command."""
from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys

import pytest

from ctranscnn.commands.common import parse_overrides
from ctranscnn.engine import slots as S
from ctranscnn.engine.config import ConfigError, load_config


def test_gpu_slots_group_the_devices():
    eight = [str(i) for i in range(8)]
    assert S.gpu_slots(eight) == [S.Slot("gpu", (str(i),)) for i in range(8)]  # one run per GPU
    assert S.gpu_slots(eight, "all") == [S.Slot("ddp", tuple(eight))]
    assert S.gpu_slots(eight, "3") == [S.Slot("ddp", ("0", "1", "2")), S.Slot("ddp", ("3", "4", "5"))]  # 6, 7 idle
    uuids = ["GPU-aa", "GPU-bb"]  # CUDA_VISIBLE_DEVICES may name GPUs by UUID
    assert S.gpu_slots(uuids, "2") == [S.Slot("ddp", tuple(uuids))]
    assert S.gpu_slots([], "all") == []
    for bad in ("9", "0", "two"):
        with pytest.raises(ConfigError, match="RUN_GPUS"):
            S.gpu_slots(eight, bad)


def test_worker_slots_on_gpus_and_cpus(monkeypatch):
    cfg = load_config(None, {"train.device": "cpu", "train.cpu_threads": 2})
    assert S.worker_slots(cfg, cpus=16) == [S.Slot("cpu")] * 8  # one run per 2 cores
    cfg.train.cpu_threads = 0  # torch's default threads take every core: one run at a time
    assert S.worker_slots(cfg, cpus=16) == [S.Slot("cpu")]
    monkeypatch.setenv("RUN_GPUS", "all")
    assert S.worker_slots(cfg, devices=["0", "1"]) == [S.Slot("ddp", ("0", "1"))]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert S.visible_gpus() == ["3", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert S.visible_gpus() == []
    cfg.train.device = "cuda"
    with pytest.raises(ConfigError, match="no GPU is visible"):
        S.worker_slots(cfg)


def _where(barrier) -> tuple[int, str, dict]:
    barrier.wait(timeout=60)  # both workers hold a task at once, so each slot's worker is seen
    return os.getpid(), os.environ["CUDA_VISIBLE_DEVICES"], S.placement()


def test_pool_pins_each_worker_to_its_own_slot():
    slots = S.gpu_slots(["0", "1"])
    with multiprocessing.get_context("spawn").Manager() as manager:
        barrier = manager.Barrier(2)
        with S.pool(slots) as workers:
            seen = list(workers.map(_where, [barrier] * 4))
    by_pid = {pid: cvd for pid, cvd, _ in seen}
    assert sorted(by_pid.values()) == ["0", "1"] and len(by_pid) == 2  # two workers, one GPU each
    for pid, cvd, where in seen:
        assert by_pid[pid] == cvd  # a worker keeps its slot for its lifetime
        assert where == {"mode": "gpu", "gpus": [cvd], "cuda_visible_devices": cvd}
    assert S.placement()["mode"] == "direct"  # the parent is not pinned


def test_train_command_runs_the_run_folder(tmp_path):
    overrides = {"data.root": "/data/nih 2024", "data.lists": "", "train.progress": False}
    one = S.train_command(tmp_path / "run", 1, overrides)
    assert one[1:6] == ["-m", "ctranscnn", "train", "--resume", str(tmp_path / "run")]
    assert parse_overrides(one[one.index("--set") + 1:]) == overrides  # values survive the command line
    four = S.train_command(tmp_path / "run", 4)
    assert four[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4"] and "--set" not in four


def test_a_ddp_slot_launches_torchrun_over_its_gpus(tmp_path, monkeypatch):
    import yaml

    from ctranscnn.engine.config import config_hash, from_dict

    cfg = load_config(None, {"profile": "smoke", "train.out_dir": str(tmp_path), "train.run_name": "r"})
    calls = []
    monkeypatch.setattr(S.subprocess, "run", lambda cmd, env: calls.append((cmd, env)) or
                        subprocess.CompletedProcess(cmd, 0))
    S.set_slot(S.Slot("ddp", ("2", "3")))
    try:
        S.launch(tmp_path / "r", cfg)
    finally:
        S.set_slot(None)
    [(cmd, env)] = calls
    assert cmd == S.train_command(tmp_path / "r", 2)
    assert env["CUDA_VISIBLE_DEVICES"] == "2,3" and json.loads(env[S.PLACEMENT_ENV]) == {"mode": "ddp",
                                                                                          "gpus": ["2", "3"]}
    written = from_dict(yaml.safe_load((tmp_path / "r" / "config.yaml").read_text()))
    assert written == cfg and config_hash(written) == config_hash(cfg)  # `train --resume` starts exactly cfg


def test_a_requeued_grid_job_stops_its_training_and_resubmits_itself(tmp_path):
    pytest.importorskip("submitit")
    from ctranscnn.report import grid

    job = grid.TrainJob(tmp_path / "run", gpus=2)
    grid._child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        again = job.checkpoint()  # what submitit calls on preemption or timeout
        assert grid._child.poll() == -signal.SIGTERM  # the training was stopped before the requeue
    finally:
        grid._child.kill()
        grid._child = None
    assert isinstance(again.function, grid.TrainJob) and again.function.command() == job.command()
    assert job.command()[-4:] == ["--resume", str(tmp_path / "run"), "--set", "train.progress=false"]

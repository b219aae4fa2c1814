"""2-process gloo DDP with the real model (ctranscnn_micro: BatchNorm, two branches, drop path, fast paths):
parameters identical on both ranks after every step, the authors' unused `fc` left alone, a rank whose share of
the last batch is empty does not hang, predictions equal the saved model's, and a torchrun job killed
mid-epoch resumes under torchrun to exactly the uninterrupted run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ctranscnn.engine.run_eval import evaluate_run
from tests.test_engine_run import make_fixture

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning")]
TORCHRUN = [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc_per_node=2"]
# 35 training images, global batch 16: batches of 16, 16 and 3, the last split 2 + 1 over the ranks.
# 64 px: at 32 px the micro model's last stage is 1 x 1 and BatchNorm cannot train on one image (a property
# of the resolution, single-process too).
SETS = {"profile": "smoke", "data.limit_train": 35, "data.limit_val": 24, "data.limit_test": 24,
        "data.image_size": 64, "schedule.epochs": 2, "train.checkpoint_every": 1, "eval.n_boot": 20}
STEPS = 2 * 3
KILL_AT = 4  # mid-epoch 2

# The engine's own `train` CLI, with two probes attached to the Trainer from outside:
# after every optimizer step all ranks all-gather their parameters and assert they are bitwise equal and that
# the authors' unused head.fc got no gradient; each rank logs the steps it checked. DDP_KILL_AT_STEP=k
# SIGKILLs rank 0 right after the checkpoint of step k (torchrun then tears the job down).
SCRIPT = '''
import os, signal, sys
import torch
import torch.distributed as dist
from ctranscnn.engine import trainer as T

LOG, KILL_AT = os.environ["DDP_LOG"], int(os.environ.get("DDP_KILL_AT_STEP", "0"))
init, save = T.Trainer.__init__, T.Trainer.save


def probed_init(self, *args, **kwargs):
    init(self, *args, **kwargs)
    fc = self.model.head.fc

    def check(optimizer, *_):
        assert fc.weight.grad is None and fc.bias.grad is None, "the unused fc got a gradient"
        flat = torch.cat([p.detach().reshape(-1) for p in self.model.parameters()])
        every = [torch.empty_like(flat) for _ in range(self.dist.world)]
        dist.all_gather(every, flat)
        assert all(torch.equal(every[0], other) for other in every), f"parameters differ after step {self.state.step + 1}"
        with open(os.path.join(LOG, f"rank{self.dist.rank}.txt"), "a") as f:
            f.write(f"{self.state.step + 1}\\n")

    self.optimizer.register_step_post_hook(check)


def killing_save(self, best=False):
    save(self, best)
    if self.state.step == KILL_AT and self.dist.main:
        os.kill(os.getpid(), signal.SIGKILL)


T.Trainer.__init__, T.Trainer.save = probed_init, killing_save
from ctranscnn.cli import main
sys.exit(main(sys.argv[1:]))
'''


def launch(script: Path, log: Path, args: list[str], kill_at: int = 0) -> subprocess.CompletedProcess:
    log.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "DDP_LOG": str(log),
           "DDP_KILL_AT_STEP": str(kill_at)}
    return subprocess.run(TORCHRUN + [str(script)] + args, env=env, capture_output=True, text=True, timeout=300)


def checked_steps(log: Path) -> list[list[int]]:
    return [[int(s) for s in (log / f"rank{r}.txt").read_text().split()] for r in (0, 1)]


def test_ctranscnn_ddp_two_ranks_stay_equal_and_resume_exactly(tmp_path):
    data = make_fixture(tmp_path / "data", sizes=(35, 24, 24))
    script = tmp_path / "probed_train.py"
    script.write_text(textwrap.dedent(SCRIPT))
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"data": {"dataset": "list", "root": str(data), "lists": str(data / "lists")},
                                      "train": {"progress": False, "out_dir": str(tmp_path / "runs")}}))

    def train_args(name: str) -> list[str]:
        return ["train", "--config", str(config), "--set", *(f"{k}={v}" for k, v in SETS.items()),
                f"train.run_name={name}"]

    whole = launch(script, tmp_path / "log_whole", train_args("whole"))
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert checked_steps(tmp_path / "log_whole") == [list(range(1, STEPS + 1))] * 2
    run = tmp_path / "runs" / "whole"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["model"] == "ctranscnn_micro" and manifest["config"]["train"]["fast"]
    assert "x 2 process" in manifest["device"] and manifest["steps"] == STEPS

    # Both ranks predicted their shards with rank 0's BatchNorm statistics, the saved ones: one process
    # evaluating best.pt / last.pt reproduces the DDP run's predictions (without the broadcast, rank 1's
    # shard of the last-epoch predictions was off by 1e-2: its statistics had seen its own last share).
    metrics = json.loads((run / "metrics.json").read_text())
    for which, suffix in (("best", ""), ("last", "_last")):
        out, _ = evaluate_run(run, "test", which)
        a, b = pd.read_csv(out), pd.read_csv(run / f"predictions_test{suffix}.csv")
        probs = [c for c in a.columns if c.startswith("prob_")]
        assert list(a["image_id"]) == list(b["image_id"])
        assert np.abs(a[probs].to_numpy() - b[probs].to_numpy()).max() < 1e-6, which  # float summation order

    killed = launch(script, tmp_path / "log_resumed", train_args("resumed"), kill_at=KILL_AT)
    assert killed.returncode != 0
    resumed_dir = tmp_path / "runs" / "resumed"
    state = json.loads((resumed_dir / "checkpoints" / "last.json").read_text())
    assert state["step"] == KILL_AT and not state["finished"] and not (resumed_dir / "metrics.json").exists()
    done = launch(script, tmp_path / "log_resumed", ["train", "--resume", str(resumed_dir)])
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = checked_steps(tmp_path / "log_resumed")
    assert ranks[0] == ranks[1] and ranks[0][-(STEPS - KILL_AT):] == list(range(KILL_AT + 1, STEPS + 1))

    assert json.loads((resumed_dir / "metrics.json").read_text()) == metrics
    for name in ("predictions_val.csv", "predictions_test.csv", "predictions_test_last.csv"):
        assert (resumed_dir / name).read_bytes() == (run / name).read_bytes(), name
    a, b = (pd.read_csv(d / "history.csv").drop(columns="epoch_seconds") for d in (run, resumed_dir))
    pd.testing.assert_frame_equal(a, b, check_exact=True)

"""Whole runs on a tiny learnable fixture (32 px, 3 classes): learning beats chance, outputs recompute their
metrics, kill -9 + --resume equals an uninterrupted run, 2-process gloo DDP equals 1 process, and the
run folder alone serves predict, evaluate and export-onnx."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from ctranscnn.cli import main as cli
from ctranscnn.engine.config import ConfigError, load_config
from ctranscnn.engine.evaluation import read_predictions
from ctranscnn.engine.run_eval import evaluate_run
from ctranscnn.engine.trainer import resume, train
from ctranscnn.metrics import compute_metrics

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # the 'paper' split's leakage warning
CLASSES = ("top", "middle", "bottom")
PYTHON = sys.executable
TORCHRUN = str(Path(sys.executable).with_name("torchrun"))
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def make_fixture(root: Path, sizes=(96, 48, 48), size: int = 32, seed: int = 0) -> Path:
    """Class k present <=> a bright band in the k-th third of the rows (flip-invariant), on noise."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "lists").mkdir()
    (root / "lists" / "classes.txt").write_text("\n".join(CLASSES))
    band = size // len(CLASSES)
    for split, count in zip(("train", "val", "test"), sizes):
        lines = []
        for i in range(count):
            y = rng.random(len(CLASSES)) < 0.4
            img = rng.normal(100, 30, (size, size))
            for k in np.flatnonzero(y):
                img[k * band:(k + 1) * band] += 60
            name = f"{split}_{i:03d}.png"
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / "images" / name)
            lines.append(f"images/{name}\t{','.join(str(int(v)) for v in y)}")
        (root / "lists" / f"{split}.txt").write_text("\n".join(lines))
    return root


# The profile beats the YAML file (so `--set profile=demo` resizes a paper config); run sizes go in --set.
SETS = {"data.limit_train": 93, "data.limit_val": 47, "data.limit_test": 0, "schedule.epochs": 3}


def cli_sets(**more) -> list[str]:
    return ["--set", *(f"{k}={v}" for k, v in {**SETS, **more}.items())]


@pytest.fixture(scope="module")
def fixture_config(tmp_path_factory) -> Path:
    """A smoke-profile run YAML on the fixture; with SETS: 93 training images (a short last batch), 47 val."""
    tmp = tmp_path_factory.mktemp("engine")
    data = make_fixture(tmp / "data")
    cfg = {"profile": "smoke", "data": {"dataset": "list", "root": str(data), "lists": str(data / "lists")},
           "train": {"cpu_threads": 1, "progress": False, "out_dir": str(tmp / "runs")}}
    path = tmp / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def reference(fixture_config) -> tuple[Path, dict]:
    torch.set_num_threads(1)
    return train(load_config(fixture_config, {**SETS, "train.run_name": "reference"}))


def test_smoke_run_learns_and_outputs_recompute_its_metrics(reference):
    run_dir, metrics = reference
    test = metrics["best"]["test"]
    assert test["mAUC"] > 75 and test["ci95"]["mAUC"][0] > 50  # chance is 50
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["model"] == "ctranscnn_micro"
    assert manifest["dataset"]["sizes"] == {"train": 93, "val": 47, "test": 48}
    assert manifest["images_per_s"] > 0 and manifest["steps"] == 3 * 6  # ceil(93 / 16) = 6 steps per epoch
    for key in ("git_commit", "config_hash", "split_hashes", "packages", "device", "wall_time_s", "final_metrics"):
        assert manifest[key]
    history = pd.read_csv(run_dir / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3]
    assert metrics["best"]["epoch"] == int(history.loc[history["val_mAUC"].idxmax(), "epoch"])
    assert metrics["last"]["epoch"] == 3
    for which, suffix in (("best", ""), ("last", "_last")):
        for split in ("val", "test"):
            y, p = read_predictions(run_dir / f"predictions_{split}{suffix}.csv", list(CLASSES))
            again = compute_metrics(y, p)
            for key in ("mAUC", "mAP", "CP", "CR", "CF1", "OP", "OR", "OF1"):
                assert again[key] == metrics[which][split][key], (which, split, key)
    frame = pd.read_csv(run_dir / "predictions_test.csv")
    assert {"logit_cnn_top", "logit_trans_top", "prob_top", "true_top", "image_id"} <= set(frame.columns)
    fused = 0.9 * frame["logit_cnn_top"] + 0.1 * frame["logit_trans_top"]
    assert np.allclose(1 / (1 + np.exp(-fused)), frame["prob_top"], atol=1e-6)
    assert set(metrics["best"]["tuned_thresholds"]) == set(CLASSES) and "tuned" in metrics["best"]["test"]
    assert json.loads((run_dir / "splits" / "sha256.json").read_text()).keys() >= {"train.txt", "test.txt"}


def test_refuses_to_overwrite_and_to_change_numbers_on_resume(reference, fixture_config):
    run_dir, _ = reference
    with pytest.raises(ConfigError, match="--resume"):
        train(load_config(fixture_config, {**SETS, "train.run_name": "reference"}))
    with pytest.raises(ConfigError, match="may change only"):
        resume(run_dir, {"optim.lr": 0.1})


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume_equals_uninterrupted_run(reference, fixture_config):
    run_dir = reference[0].with_name("killed")
    cmd = [PYTHON, "-m", "ctranscnn", "train", "--config", str(fixture_config), *cli_sets(**{"train.run_name": run_dir.name})]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    progress = run_dir / "checkpoints" / "last.json"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if progress.exists() and json.loads(progress.read_text())["step"] >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    state = json.loads(progress.read_text())
    assert 2 <= state["step"] < 18 and not state["finished"]  # killed during training
    assert not (run_dir / "metrics.json").exists()
    done = subprocess.run([PYTHON, "-m", "ctranscnn", "train", "--resume", str(run_dir)], env=ENV,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    want = json.loads((reference[0] / "metrics.json").read_text())
    got = json.loads((run_dir / "metrics.json").read_text())
    assert got == want
    for name in ("predictions_test.csv", "predictions_val_last.csv", "history.csv"):
        if name == "history.csv":  # epoch_seconds differ; everything else must not
            a, b = (pd.read_csv(d / name).drop(columns="epoch_seconds") for d in (reference[0], run_dir))
            pd.testing.assert_frame_equal(a, b, check_exact=True)
        else:
            assert (run_dir / name).read_bytes() == (reference[0] / name).read_bytes()


DDP_SCRIPT = '''
import sys
import torch.nn as nn
from ctranscnn.registry import register_model


class TwoBranchNet(nn.Module):
    """No BatchNorm: on CPU, BN statistics over each rank's half batch would differ from the full batch."""

    branch_names = ("cnn", "trans")

    def __init__(self, num_classes, **kwargs):
        super().__init__()
        self.num_classes = num_classes
        self.trunk = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.GELU(), nn.Conv2d(8, 16, 3, 2, 1), nn.GELU(),
                                   nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.LayerNorm(16))
        self.cnn, self.trans = nn.Linear(16, num_classes), nn.Linear(16, num_classes)

    def forward_features(self, x):
        return self.trunk(x)

    def forward_head(self, f):
        return {"cnn": self.cnn(f), "trans": self.trans(f)}

    def fuse_logits(self, b):
        return 0.9 * b["cnn"] + 0.1 * b["trans"]

    def forward(self, x):
        return self.fuse_logits(self.forward_head(self.forward_features(x)))


@register_model
def ddp_test_net(num_classes, **kwargs):
    return TwoBranchNet(num_classes, **kwargs)


from ctranscnn.cli import main
sys.exit(main(sys.argv[1:]))
'''


@pytest.mark.slow
def test_two_process_gloo_ddp_equals_one_process(fixture_config, tmp_path):
    """Same global batch (16; the last one 13 = 7 + 6 over two ranks), val of 47 images (DistributedSampler
    pads one duplicate). Tolerance: probabilities 1e-5, metrics 1e-3 points (float summation order only)."""
    script = tmp_path / "ddp_train.py"
    script.write_text(textwrap.dedent(DDP_SCRIPT))
    args = ["train", "--config", str(fixture_config), *cli_sets(**{"model.name": "ddp_test_net", "model.size": "",
                                                                   "train.checkpoint_every": 0})]
    runs = {}
    for name, launcher in (("one", [PYTHON]), ("two", [TORCHRUN, "--standalone", "--nproc_per_node=2"])):
        done = subprocess.run(launcher + [str(script)] + args + [f"train.run_name=ddp_{name}"], env=ENV,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[name] = Path(yaml.safe_load(fixture_config.read_text())["train"]["out_dir"]) / f"ddp_{name}"
    one, two = (json.loads((runs[k] / "metrics.json").read_text()) for k in ("one", "two"))
    assert "2 process" in json.loads((runs["two"] / "manifest.json").read_text())["device"]
    for which in ("best", "last"):
        assert one[which]["epoch"] == two[which]["epoch"]
        for split in ("val", "test"):
            for key in ("mAUC", "mAP", "CP", "CR", "CF1", "OP", "OR", "OF1"):
                assert two[which][split][key] == pytest.approx(one[which][split][key], abs=1e-3), (which, split, key)
    for split in ("val", "test"):
        a, b = (pd.read_csv(runs[k] / f"predictions_{split}.csv") for k in ("one", "two"))
        assert list(a["image_id"]) == list(b["image_id"]) and len(a) == {"val": 47, "test": 48}[split]
        probs = [c for c in a.columns if c.startswith("prob_")]
        assert np.abs(a[probs].to_numpy() - b[probs].to_numpy()).max() < 1e-5
    h1, h2 = (pd.read_csv(runs[k] / "history.csv") for k in ("one", "two"))
    assert np.allclose(h1["train_loss"], h2["train_loss"], rtol=1e-5)


def fixture_images(run_dir: Path, which=(0, 5, 7)) -> list[Path]:
    root = Path(yaml.safe_load((run_dir / "config.yaml").read_text())["data"]["root"])
    return [root / "images" / f"test_{i:03d}.png" for i in which]


def test_predict_evaluate_and_onnx_from_the_run_folder(reference, capsys, tmp_path):
    run_dir, metrics = reference
    frame = pd.read_csv(run_dir / "predictions_test.csv").set_index("image_id")
    images = fixture_images(run_dir)
    assert cli(["predict", "--run", str(run_dir), "--json", *map(str, images)]) == 0
    out = json.loads(capsys.readouterr().out)
    for r, path in zip(out, images, strict=True):  # the same probabilities as the run's own test predictions
        want = frame.loc[f"images/{path.name}", [f"prob_{c}" for c in CLASSES]].to_numpy(float)
        assert np.abs(np.array([r["probabilities"][c] for c in CLASSES]) - want).max() < 1e-6
        assert r["labels"] == [c for c, p in zip(CLASSES, want) if p >= 0.5]

    _, again = evaluate_run(run_dir, "test", "best")
    assert again["mAUC"] == metrics["best"]["test"]["mAUC"] and again["tuned"] == metrics["best"]["test"]["tuned"]

    onnx_path = tmp_path / "model.onnx"
    assert cli(["export-onnx", "--run", str(run_dir), "--out", str(onnx_path)]) == 0
    ort = pytest.importorskip("onnxruntime")
    from ctranscnn.engine.rundir import RunDir

    x = RunDir(run_dir).images(images).numpy()  # batch of 3: the batch axis is dynamic
    got = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    want = frame.loc[[f"images/{p.name}" for p in images], [f"prob_{c}" for c in CLASSES]].to_numpy(float)
    assert np.abs(got - want).max() < 1e-5
    meta = json.loads(onnx_path.with_suffix(".onnx.json").read_text())
    assert meta["classes"] == list(CLASSES) and meta["preprocess"]["size"] == 32


def test_predict_on_the_real_sample_images(reference, capsys, shared_dir):
    samples = sorted((shared_dir / "data" / "samples").iterdir())  # an RGB JPEG and an RGBA PNG
    assert cli(["predict", "--run", str(reference[0]), "--threshold", "tuned", *map(str, samples)]) == 0
    text = capsys.readouterr().out
    assert text.count("labels:") == len(samples) and all(s.name in text for s in samples)
    with pytest.raises(SystemExit, match="missing image"):
        cli(["predict", "--run", str(reference[0]), str(samples[0].with_name("nope.png"))])


@pytest.mark.slow
def test_bf16_and_channels_last_options_run_on_cpu(fixture_config, reference):
    cfg = load_config(fixture_config, {**SETS, "train.amp": "bf16", "train.channels_last": True, "schedule.epochs": 1,
                                       "train.run_name": "bf16", "data.limit_train": 32, "eval.n_boot": 0})
    run_dir, metrics = train(cfg)
    assert np.isfinite(metrics["last"]["test"]["mAUC"])
    shutil.rmtree(run_dir)

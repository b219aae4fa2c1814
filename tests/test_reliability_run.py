"""Run folders under stress: two trainings into one folder (two real processes), a killed holder, read-only
destinations, a run that fails, lost or damaged checkpoints, file modes; and `predict` at scale."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from ctranscnn.cli import main
from ctranscnn.data.errors import DataError
from ctranscnn.engine.config import ConfigError, load_config
from ctranscnn.engine.rundir import RunDir
from ctranscnn.engine.runlock import RunLock
from ctranscnn.engine.trainer import resume, train
from test_engine_run import ENV, PYTHON, make_fixture

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # the 'paper' split's leakage warning
SMALL = {"data.limit_train": 32, "data.limit_val": 16, "data.limit_test": 16, "schedule.epochs": 1,
         "eval.n_boot": 10}
UMASK = 0o002  # not the usual 022, so the modes below can only come from following the umask


def sets(values: dict) -> list[str]:
    return ["--set", *(f"{k}={v}" for k, v in values.items())]


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> SimpleNamespace:
    tmp = tmp_path_factory.mktemp("reliability")
    data = make_fixture(tmp / "data", sizes=(32, 16, 16))
    cfg = {"profile": "smoke", "data": {"dataset": "list", "root": str(data), "lists": str(data / "lists")},
           "train": {"cpu_threads": 1, "progress": False, "out_dir": str(tmp / "runs")}}
    config = tmp / "run.yaml"
    config.write_text(yaml.safe_dump(cfg))
    old = os.umask(UMASK)
    try:
        done, metrics = train(load_config(config, {**SMALL, "train.run_name": "done"}))
    finally:
        os.umask(old)
    return SimpleNamespace(tmp=tmp, data=data, config=config, runs=tmp / "runs", done=done, metrics=metrics)


def copy_run(setup, name: str) -> Path:
    target = setup.runs / name
    shutil.copytree(setup.done, target)
    return target


def hold_lock(folder: Path) -> subprocess.Popen:
    """Another real process holding `folder`'s lock until killed."""
    code = ("import sys, time; from ctranscnn.engine.runlock import RunLock\n"
            "with RunLock(sys.argv[1], 'test'):\n    print('held', flush=True); time.sleep(600)")
    proc = subprocess.Popen([PYTHON, "-c", code, str(folder)], env=ENV, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


# ---------------------------------------------------------------- one training per folder


@pytest.mark.slow
def test_two_trainings_into_one_folder_the_second_fails_at_once(setup):
    folder = setup.runs / "twice"
    base = ["-m", "ctranscnn", "train", "--config", str(setup.config)]
    first = subprocess.Popen([PYTHON, *base, *sets({**SMALL, "schedule.epochs": 2, "train.run_name": "twice"})],
                             env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while not (folder / "manifest.json").exists():  # the first one has started its training
            assert first.poll() is None and time.time() < deadline, first.stderr.read()
            time.sleep(0.05)
        first.send_signal(signal.SIGSTOP)  # keeps its lock, so the race below is not a matter of timing
        second = subprocess.run([PYTHON, *base, *sets({**SMALL, "schedule.epochs": 2, "train.run_name": "twice",
                                                      "train.seed": 1})],
                                env=ENV, capture_output=True, text=True, timeout=300)
        assert second.returncode == 1
        assert second.stderr.strip().splitlines()[-1].startswith(
            f"train: {folder}: in use by process {first.pid} on {socket.gethostname()} (train since ")
        assert yaml.safe_load((folder / "config.yaml").read_text())["train"]["seed"] == 0  # untouched by it
        assert RunDir(folder).status() == "running" and RunDir(folder).holder()["pid"] == first.pid
    finally:
        first.kill()
        first.wait()
    # kill -9 leaves the lock file with the dead holder's record; the kernel has dropped the lock itself
    assert json.loads((folder / ".lock").read_text())["pid"] == first.pid
    assert RunDir(folder).holder() is None and RunDir(folder).status() == "interrupted"
    done = subprocess.run([PYTHON, "-m", "ctranscnn", "train", "--resume", str(folder)], env=ENV,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["seed"] == 0 and manifest["epochs_done"] == 2
    assert torch.load(folder / "checkpoints" / "best.pt", weights_only=True)["config"]["train"]["seed"] == 0
    assert RunDir(folder).holder() is None and (folder / ".lock").read_text() == ""


def test_resume_refuses_a_folder_another_process_holds(setup):
    folder = copy_run(setup, "held")
    holder = hold_lock(folder)
    try:
        with pytest.raises(SystemExit, match=rf"^train: {folder}: in use by process {holder.pid} on .* \(test since"):
            main(["train", "--resume", str(folder)])
    finally:
        holder.kill()
        holder.wait()
    with RunLock(folder):  # free again once the holder is dead
        assert RunDir(folder).holder() == {"pid": os.getpid(), "host": socket.gethostname(), "what": "train",
                                           "since": RunDir(folder).holder()["since"]}


def test_a_killed_holders_forked_workers_do_not_keep_the_lock(tmp_path):
    code = ("import os, signal, sys, time; from ctranscnn.engine.runlock import RunLock\n"
            "lock = RunLock(sys.argv[1]).__enter__()\n"
            "if os.fork() == 0:\n    time.sleep(600)\n"  # a worker forked while the lock is held
            "print('held', flush=True); time.sleep(600)")
    proc = subprocess.Popen([PYTHON, "-c", code, str(tmp_path)], env=ENV, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    worker = [int(c) for c in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
    assert len(worker) == 1 and RunDir(tmp_path).holder()["pid"] == proc.pid
    proc.kill()
    proc.wait()
    try:
        os.kill(worker[0], 0)  # the worker lives on, orphaned ...
        assert RunDir(tmp_path).holder() is None  # ... without the lock
    finally:
        os.kill(worker[0], signal.SIGKILL)


def test_grid_and_evaluate_tell_a_live_run_from_a_dead_one(setup, capsys):
    from ctranscnn.report.grid import status

    folder = copy_run(setup, "alive")
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))
    cfg = load_config(setup.config, {**SMALL, "train.run_name": "alive"})  # the copied run's config
    grid_run = SimpleNamespace(name="alive", run_dir=folder, planned=SimpleNamespace(config=cfg))
    holder = hold_lock(folder)
    try:
        assert status([grid_run], setup.tmp)[0]["status"] == "running"
        with pytest.raises(SystemExit, match=rf"^evaluate: {folder} is still training \(process {holder.pid} on "):
            main(["evaluate", "--run", str(folder)])
    finally:
        holder.kill()
        holder.wait()
    assert status([grid_run], setup.tmp)[0]["status"] == "failed"  # started, dead: `grid submit` resubmits it
    assert main(["evaluate", "--run", str(folder), "--checkpoint", "last"]) == 0
    assert "was interrupted (its manifest says running, but no process holds the folder)" in capsys.readouterr().err


# ---------------------------------------------------------------- unwritable destinations, failures


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs Linux sysfs (never writable, even by root)")
def test_unwritable_output_folder_fails_before_any_data_is_read(setup):
    config = setup.tmp / "ro.yaml"
    config.write_text(setup.config.read_text().replace(str(setup.data), "/nonexistent/data"))
    with pytest.raises(SystemExit) as e:  # the data is missing too: the folder is checked first
        main(["train", "--config", str(config), *sets({"train.out_dir": "/sys/ctranscnn-runs", "train.run_name": "x"})])
    assert str(e.value) == ("train: /sys/ctranscnn-runs/x: cannot write the run there (Operation not permitted); "
                            "choose another train.out_dir or fix its permissions")


def test_unwritable_checkpoints_folder_fails_before_any_step(setup):
    config = setup.tmp / "ro.yaml"
    config.write_text(setup.config.read_text().replace(str(setup.data), "/nonexistent/data"))
    checkpoints = setup.runs / "ro_ckpt" / "checkpoints"
    checkpoints.mkdir(parents=True)
    read_only_folder(checkpoints)
    try:
        with pytest.raises(SystemExit) as e:
            main(["train", "--config", str(config), *sets({"train.run_name": "ro_ckpt"})])
    finally:
        subprocess.run(["chattr", "-i", str(checkpoints)], capture_output=True)
        checkpoints.chmod(0o755)
    assert str(e.value).startswith(f"train: {checkpoints}: cannot write the run there (")
    assert list(checkpoints.iterdir()) == []


def test_failing_run_marks_its_manifest_failed_with_the_error(setup, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(setup.data, data)
    broken = data / "images" / "val_003.png"
    broken.write_bytes(broken.read_bytes()[:60])  # present and non-empty: found only when decoded
    with pytest.raises(DataError):
        train(load_config(setup.config, {**SMALL, "data.root": str(data), "data.lists": str(data / "lists"),
                                         "train.run_name": "fails"}))
    run = RunDir(setup.runs / "fails")
    assert run.status() == "failed" and run.holder() is None
    assert run.manifest["error"].startswith(f"DataError: {broken}: unreadable or corrupt image")


def test_run_files_follow_the_umask(setup):
    pytest.importorskip("onnxruntime")
    out = setup.tmp / "model.onnx"
    old = os.umask(UMASK)
    try:
        assert main(["export-onnx", "--run", str(setup.done), "--out", str(out)]) == 0
    finally:
        os.umask(old)
    files = [p for p in setup.done.rglob("*") if p.is_file()] + [out, out.with_suffix(".onnx.json")]
    names = {p.relative_to(setup.tmp).as_posix() for p in files}
    assert {"runs/done/config.yaml", "runs/done/manifest.json", "runs/done/checkpoints/last.pt",
            "runs/done/splits/train.txt", "runs/done/predictions_test.csv", "runs/done/.lock", "model.onnx"} <= names
    assert {p.relative_to(setup.tmp).as_posix(): oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {
        n: oct(0o666 & ~UMASK) for n in names}


# ---------------------------------------------------------------- lost and damaged checkpoints


def test_missing_last_checkpoint_needs_an_explicit_restart(setup):
    folder = copy_run(setup, "lost")
    (folder / "checkpoints" / "last.pt").unlink()
    with pytest.raises(ConfigError, match=r"last\.pt is missing, but the run had saved it .* --restart$"):
        resume(folder)
    with pytest.raises(SystemExit, match=rf"^train: {folder / 'checkpoints' / 'last.pt'} is missing"):
        main(["train", "--resume", str(folder)])
    _, metrics = resume(folder, restart=True)
    assert metrics == json.loads(json.dumps(setup.metrics, default=float))  # the same run again, exactly
    assert sorted(p.name for p in (folder / "checkpoints.before-restart").iterdir()) == ["best.json", "best.pt",
                                                                                       "last.json"]


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_damaged_checkpoint_is_named_by_every_command(setup, damage):
    folder = copy_run(setup, f"damaged_{damage}")
    for which in ("best", "last"):
        path = folder / "checkpoints" / f"{which}.pt"
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2] if damage == "truncated" else b"")
    best, last = folder / "checkpoints" / "best.pt", folder / "checkpoints" / "last.pt"
    image = str(setup.data / "images" / "test_000.png")
    commands = [(["train", "--resume", str(folder)], last), (["predict", "--run", str(folder), image], best),
                (["evaluate", "--run", str(folder)], best), (["evaluate", "--run", str(folder), "--checkpoint",
                                                              "last"], last)]
    try:
        import onnx  # noqa: F401

        commands.append((["export-onnx", "--run", str(folder), "--out", str(folder / "m.onnx")], best))
    except ImportError:
        pass
    for argv, path in commands:
        with pytest.raises(SystemExit) as e:
            main(argv)
        message = str(e.value)
        assert message.startswith(f"{argv[0]}: {path}: damaged or truncated checkpoint ("), argv
        assert "\n" not in message and "--checkpoint best|last" in message and "--restart" in message


# ---------------------------------------------------------------- predict


def test_predict_batches_expands_folders_and_globs_and_shows_thresholds(setup, capsys, monkeypatch):
    images = setup.data / "images"
    files = sorted(images.glob("test_*.png"))
    run = RunDir(setup.done)
    with torch.no_grad():  # the oracle: every image in one batch, straight from the run folder
        oracle = torch.sigmoid(run.load_model("best")(run.images(files))).numpy()
    seen: list[int] = []
    real_images = RunDir.images
    monkeypatch.setattr(RunDir, "images", lambda self, paths, which="best": seen.append(len(paths))
                        or real_images(self, paths, which))
    assert main(["predict", "--run", str(setup.done), str(images / "test_*.png"), "--batch-size", "5", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert seen == [5, 5, 5, 1] and [r["image"] for r in results] == list(map(str, files))
    got = np.array([[r["probabilities"][c] for c in run.classes] for r in results])
    np.testing.assert_allclose(got, oracle, rtol=0, atol=1e-6)
    tuned = setup.metrics["best"]["tuned_thresholds"]
    assert all(r["thresholds"] == dict.fromkeys(run.classes, 0.5) for r in results)
    assert all(r["labels"] == [c for c, p in r["probabilities"].items() if p >= 0.5] for r in results)
    # a folder means its images; the text output names the threshold used for each class
    assert main(["predict", "--run", str(setup.done), str(images), "--threshold", "tuned"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("thresholds: tuned on validation: " + ", ".join(f"{c} {t:.3f}" for c, t in tuned.items()))
    assert out.count(f"{images}/") == len(list(images.glob("*.png")))
    c, t = next(iter(tuned.items()))
    assert f" {t:.3f}  {c}\n" in out


@pytest.mark.parametrize("value", ["7", "nan", "-0.1", "inf", "high"])
def test_predict_rejects_thresholds_outside_the_unit_interval(setup, value):
    with pytest.raises(SystemExit, match=rf"^predict: --threshold must be a probability in \[0, 1\] or 'tuned', "
                                         rf"got '{value}'$"):
        main(["predict", "--run", str(setup.done), "x.png", "--threshold", value])


def test_predict_says_plainly_that_dicom_is_not_supported(setup, tmp_path):
    dicom = tmp_path / "scan.dcm"
    dicom.write_bytes(bytes(128) + b"DICM" + b"\x02\x00\x10\x00UI\x14\x001.2.840.10008.1.2.1\x00")
    with pytest.raises(SystemExit, match=rf"^predict: {dicom}: DICOM is not supported; convert it to PNG"):
        main(["predict", "--run", str(setup.done), str(dicom)])
    with pytest.raises(SystemExit, match=rf"^predict: {tmp_path / 'none'}\*\.png: no file matches this pattern$"):
        main(["predict", "--run", str(setup.done), str(tmp_path / "none") + "*.png"])


def test_skipped_classes_are_named_in_run_files(setup):
    from ctranscnn.engine.evaluation import split_metrics

    y = np.array([[1, 0, 1], [0, 0, 1], [1, 0, 1], [0, 0, 1]])  # 'middle' has no positive, 'bottom' no negative
    p = np.linspace(0.1, 0.9, 12).reshape(4, 3)
    named = split_metrics(y, p, "skip", classes=["top", "middle", "bottom"])
    assert named["skipped_classes"] == ["middle", "bottom"]
    assert split_metrics(y, p, "skip")["skipped_classes"] == [1, 2]  # the library function keeps indices
    metrics = json.loads((setup.done / "metrics.json").read_text())
    for which in ("best", "last"):
        for split in ("val", "test"):
            assert set(metrics[which][split]["skipped_classes"]) <= set(RunDir(setup.done).classes)


def read_only_folder(folder: Path) -> None:
    """Make `folder` unwritable for this process: permission bits, or for root an immutable flag (chattr)."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
    elif subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("running as root without chattr: permission bits do not stop root")


def test_unwritable_onnx_destination_names_the_file_not_a_temporary(setup, tmp_path):
    pytest.importorskip("onnxruntime")
    folder = tmp_path / "ro"
    folder.mkdir()
    read_only_folder(folder)
    try:
        with pytest.raises(SystemExit) as e:
            main(["export-onnx", "--run", str(setup.done), "--out", str(folder / "model.onnx")])
    finally:
        subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
        folder.chmod(0o755)
    assert str(e.value).startswith("export-onnx: [Errno ") and str(e.value).endswith(f": '{folder / 'model.onnx'}'")
    assert list(folder.iterdir()) == []

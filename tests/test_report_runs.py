"""Runs trained side by side in worker processes give the same numbers as runs trained one after another."""
from __future__ import annotations

import json

import pytest

from ctranscnn.engine.config import load_config
from ctranscnn.engine.slots import gpu_slots
from ctranscnn.report.plan import ensure_runs, parallel_jobs
from tests.test_engine_run import make_fixture

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def configs(data, out_dir):
    sets = {"profile": "smoke", "data.dataset": "list", "data.root": str(data), "data.lists": str(data / "lists"),
            "data.limit_train": 48, "data.limit_val": 24, "data.limit_test": 24, "train.progress": False,
            "train.out_dir": str(out_dir)}
    return [load_config(None, {**sets, "train.seed": s, "train.run_name": f"s{s}"}) for s in (0, 1)]


@pytest.mark.slow
def test_parallel_runs_equal_sequential_runs(tmp_path):
    data = make_fixture(tmp_path / "data", sizes=(48, 24, 24))
    seq = configs(data, tmp_path / "seq")
    par = configs(data, tmp_path / "par")
    assert parallel_jobs(seq[0]) >= 1 and seq[0].train.cpu_threads == 1
    seq_dirs = ensure_runs(seq, jobs=1)
    # Two faked GPUs: the multi-GPU path (one worker per GPU, pinned by CUDA_VISIBLE_DEVICES); on a CPU
    # machine the runs still train on the CPU, on a GPU machine on GPUs 0 and 1.
    par_dirs = ensure_runs(par + par[:1], slots=gpu_slots(["0", "1"]))  # a repeated config is trained once
    assert len(par_dirs) == 3 and par_dirs[0] == par_dirs[2]
    placements = [json.loads((d / "manifest.json").read_text())["placement"] for d in par_dirs[:2]]
    for p in placements:  # each run's manifest names its worker's GPU
        assert p["mode"] == "gpu" and p["gpus"] == [p["cuda_visible_devices"]] and p["gpus"][0] in ("0", "1")
    assert json.loads((seq_dirs[0] / "manifest.json").read_text())["placement"]["mode"] == "cpu"
    for a, b in zip(seq_dirs, par_dirs):
        ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
        assert ma["best"]["test"]["mAUC"] == mb["best"]["test"]["mAUC"]
        assert ma["last"]["test"]["per_class_auc"] == mb["last"]["test"]["per_class_auc"]
        assert (a / "predictions_test.csv").read_text() == (b / "predictions_test.csv").read_text()


@pytest.mark.slow
def test_ensure_run_grid_and_preflight_agree_on_a_run_folders_state(tmp_path, capsys):
    from ctranscnn.engine.rundir import RunDir
    from ctranscnn.engine.runlock import RunLock
    from ctranscnn.report import notebook, preflight
    from ctranscnn.report.grid import GridRun, prepare, status
    from ctranscnn.report.plan import PlannedRun, ensure_run, run_state

    data = make_fixture(tmp_path / "data", sizes=(16, 8, 8))
    cfg = load_config(None, {"profile": "smoke", "data.dataset": "list", "data.root": str(data),
                             "data.lists": str(data / "lists"), "schedule.epochs": 1, "train.progress": False,
                             "train.out_dir": str(tmp_path / "runs"), "train.run_name": "r"})
    run = RunDir.for_config(cfg)
    planned = PlannedRun("train", "main", "list", "ctranscnn", {}, "paper", 0, cfg, run.path)
    grid_run = GridRun(planned, ("train: main",))

    def states() -> tuple[str, str, str, str]:  # ensure_run's, the notebook plan table's, the preflight's, the grid's
        return (run_state(cfg), notebook.run_status(cfg), preflight.run_status(planned),
                status([grid_run], tmp_path / "runs")[0]["status"])

    def edit_manifest(**fields) -> None:
        run.manifest_file.write_text(json.dumps({**json.loads(run.manifest_file.read_text()), **fields}))

    assert states() == ("new", "trained now", "to train", "missing")
    ensure_run(cfg)
    assert states() == ("finished", "reused", "finished", "finished")
    finished = run.manifest_file.read_text()
    capsys.readouterr()
    assert ensure_run(cfg) == run.path and "reusing" in capsys.readouterr().out
    assert run.manifest_file.read_text() == finished  # nothing retrained

    edit_manifest(status="running")  # a run whose process died before the end: resumed, resubmitted
    assert states() == ("started", "resumed", "resume", "failed")
    edit_manifest(status="finished", config_hash="0" * 64)
    assert states() == ("config changed", "trained now", "to train (config changed)", "stale")
    edit_manifest(config_hash=json.loads(finished)["config_hash"], dataset={"hash": "0" * 64})
    assert states() == ("data changed", "trained now", "to train (data changed)", "stale")
    ensure_run(cfg)  # the notebooks set the old folder aside and train the run again
    assert "data changed; moving it to" in capsys.readouterr().out
    assert run.path.with_name("r.stale").is_dir() and states()[0] == "finished"
    assert json.loads(run.manifest_file.read_text())["dataset"] == json.loads(finished)["dataset"]

    edit_manifest(dataset={"hash": "0" * 64})
    with RunLock(run.path):  # a process still training there: its folder is left alone
        assert states()[3] == "running"
        prepare([grid_run], [status([grid_run], tmp_path / "runs")[0]["status"]])
        assert run.manifest_file.exists()
    # plan --json / grid submit: the same, then a config.yaml to start from
    prepare([grid_run], [status([grid_run], tmp_path / "runs")[0]["status"]])
    assert not run.manifest_file.exists() and run.config_file.exists() and not run.has_checkpoint("last")
    assert json.loads((run.path.with_name("r.stale") / "manifest.json").read_text())["dataset"]["hash"] == "0" * 64
    assert states() == ("started", "resumed", "resume", "missing")

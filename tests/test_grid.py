"""The plan as records and the grid through submitit's local executor: real job processes, real run folders,
smoke sizes. Another scheduler runs `plan --json`'s command; a grid job is killed mid-run, `grid status` calls
it failed, `grid submit` resubmits it, it resumes from its checkpoint and ends equal to the first run; then
the plan reports every run finished (so reproduce.sh trains nothing)."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ctranscnn.cli import main as cli
from tests.test_engine_run import make_fixture

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning")]
pytest.importorskip("submitit")  # a dev dependency; the `cluster` extra for users
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


@pytest.fixture()
def tcmtd(tmp_path) -> Path:
    """A TCMTD-style list folder (classes.txt, train/val/test.txt beside images/): the plan's one run per seed."""
    root = make_fixture(tmp_path / "tcmtd")
    for f in (root / "lists").iterdir():
        shutil.copy(f, root / f.name)
    return root


def plan_args(tcmtd: Path, runs: Path) -> list[str]:
    return ["--profile", "smoke", "--tcmtd-list", str(tcmtd), "--runs-dir", str(runs), "--seeds", "0",
            "--data-dir", str(tcmtd.parent / "no-phantoms")]


def plan_json(tcmtd: Path, runs: Path) -> list[dict]:
    out = runs.parent / f"{runs.name}.jsonl"
    assert cli(["plan", *plan_args(tcmtd, runs), "--json", str(out)]) == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


def parents() -> dict[int, int]:
    """pid -> parent pid of every process now (from /proc/*/stat, which, unlike /proc/*/children, is reliable)."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        out[int(stat.parent.name)] = int(fields[1])
    return out


def kill_tree(root: int) -> list[int]:
    """SIGKILL `root` and all its descendants, as a lost node would: freeze them first (SIGSTOP, repeated until
    no new descendant appears), so that none forks or is reparented away between the listing and the kill."""
    frozen: set[int] = set()
    while True:
        ppid, tree, todo = parents(), {root}, [root]
        while todo:
            pid = todo.pop()
            children = [c for c, p in ppid.items() if p == pid and c not in tree]
            tree.update(children)
            todo.extend(children)
        new = tree - frozen
        if not new:
            break
        for pid in new:
            try:
                os.kill(pid, signal.SIGSTOP)
            except ProcessLookupError:
                pass
        frozen |= new
    for pid in frozen:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return sorted(frozen)


def gone(pid: int) -> bool:
    """The process has released its files: it no longer exists, or it is a zombie none of whose threads remain.
    A killed process's leader turns zombie while its other threads are still exiting, and those threads share
    its file table, so until the last one is gone its flock is still held."""
    try:
        zombie = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].startswith("Z")
        return zombie and os.listdir(f"/proc/{pid}/task") == [str(pid)]
    except OSError:
        return True


def wait_gone(pids: list[int], timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    for pid in pids:
        while time.time() < deadline and not gone(pid):
            time.sleep(0.02)


def grid_status(tcmtd: Path, runs: Path, capsys) -> str:
    capsys.readouterr()
    assert cli(["grid", "status", *plan_args(tcmtd, runs)]) == 0
    return capsys.readouterr().out.splitlines()[-2].split()[0]  # the status of the one run


def test_plan_json_and_local_grid_with_a_killed_job(tcmtd, tmp_path, capsys):
    # Another scheduler: one record per run, with the command that trains it.
    ref_runs = tmp_path / "ref"
    [record] = plan_json(tcmtd, ref_runs)
    assert record["status"] == "missing" and record["dataset"] == "tcmtd" and record["seed"] == 0
    assert record["run"].endswith(record["config_hash"][:10]) and record["config"]["profile"] == "smoke"
    command = shlex.split(record["command"])
    done = subprocess.run([sys.executable, *command[1:]], env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    [record] = plan_json(tcmtd, ref_runs)
    assert record["status"] == "finished"
    reference = Path(record["run_dir"])

    # The grid: submit, kill the job's whole process tree during training, see it failed.
    grid_runs = tmp_path / "grid"
    assert cli(["grid", "submit", "--executor", "local", *plan_args(tcmtd, grid_runs)]) == 0
    jobs = json.loads((grid_runs / ".grid" / "jobs.json").read_text())
    [(name, entry)] = jobs.items()
    assert name == reference.name and entry["executor"] == "local"
    controller = int(entry["job_id"])
    progress = grid_runs / name / "checkpoints" / "last.json"
    deadline = time.time() + 240
    while time.time() < deadline and not (progress.exists() and json.loads(progress.read_text())["step"] >= 2):
        time.sleep(0.02)
    holder = json.loads((grid_runs / name / ".lock").read_text())["pid"]  # the training process
    tree = kill_tree(controller)  # a lost node: nothing gets to clean up
    assert holder in tree, (holder, tree)
    os.waitpid(controller, 0)  # the controller is this process's child (local executor)
    wait_gone(tree)  # SIGKILL is asynchronous: the training's folder lock goes when its process is gone
    state = json.loads(progress.read_text())
    assert state["step"] >= 2 and not state["finished"]
    assert grid_status(tcmtd, grid_runs, capsys) == "failed"

    # Resubmitted, the job resumes from the last checkpoint and the run ends as the uninterrupted one.
    assert cli(["grid", "submit", "--executor", "local", *plan_args(tcmtd, grid_runs)]) == 0
    second = json.loads((grid_runs / ".grid" / "jobs.json").read_text())[name]["job_id"]
    assert second != entry["job_id"]
    os.waitpid(int(second), 0)
    log = (grid_runs / ".grid" / "submitit" / second / f"{second}_0_log.out").read_text()
    assert f"resuming from step {state['step']}" in log
    assert grid_status(tcmtd, grid_runs, capsys) == "finished"
    run = grid_runs / name
    assert json.loads((run / "metrics.json").read_text()) == json.loads((reference / "metrics.json").read_text())
    for f in ("predictions_test.csv", "predictions_val_last.csv"):
        assert (run / f).read_bytes() == (reference / f).read_bytes()
    assert [r["status"] for r in plan_json(tcmtd, grid_runs)] == ["finished"]  # the notebooks train nothing
    assert cli(["grid", "submit", "--executor", "local", *plan_args(tcmtd, grid_runs)]) == 0
    assert "0 job(s) submitted" in capsys.readouterr().out

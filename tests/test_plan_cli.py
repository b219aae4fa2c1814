"""`plan` and `grid` command lines: the plan's runs per seed and notebook, one-line errors for bad options."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from ctranscnn.cli import main as cli
from tests.test_engine_run import make_fixture


@pytest.fixture(scope="module")
def tcmtd(tmp_path_factory):
    root = make_fixture(tmp_path_factory.mktemp("plan") / "tcmtd", sizes=(8, 4, 4))
    for f in (root / "lists").iterdir():
        shutil.copy(f, root / f.name)
    return root


def args(tcmtd, *more: str, profile: str = "smoke") -> list[str]:
    return ["--profile", profile, "--tcmtd-list", str(tcmtd), "--runs-dir", str(tcmtd.parent / "runs"),
            "--data-dir", str(tcmtd.parent / "none"), *more]


def test_plan_lists_one_run_per_seed_with_its_command(tcmtd, capsys):
    # the paper profile gives every row every seed (smoke and demo keep one seed off the claim rows)
    assert cli(["plan", *args(tcmtd, "--seeds", "0", "1", "2", "--gpus-per-run", "2", "--json", "-",
                              profile="paper")]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["seed"] for r in records] == [0, 1, 2] and {r["status"] for r in records} == {"missing"}
    assert len({r["config_hash"] for r in records}) == 3 and all(r["used_by"] == ["train: main"] for r in records)
    for r in records:  # the command starts the run from the config.yaml that --json wrote
        assert "--nproc_per_node=2" in r["command"] and r["command"].split("--resume ")[1].startswith(r["run_dir"])
        assert json.loads(json.dumps(r["config"]))["train"]["seed"] == r["seed"]
        assert (tcmtd.parent / "runs" / r["run"] / "config.yaml").is_file()
    # the ablation and the comparison use the chest datasets only: nothing of theirs on a tongue set
    assert cli(["plan", *args(tcmtd, "--notebooks", "ablation", "sota")]) == 0
    assert "0 run(s)" in capsys.readouterr().out


@pytest.mark.parametrize("command, message", [
    (["plan", "--datasets", "nih"], "plan: --datasets nih not found (found: tcmtd)"),
    (["grid", "submit", "--executor", "slurm"], "--executor slurm needs --partition"),
    (["grid", "submit", "--executor", "local", "--slurm", "account"], "--slurm expects key=value, got 'account'"),
])
def test_bad_options_are_one_line_errors(tcmtd, command, message):
    with pytest.raises(SystemExit, match=message.replace("(", r"\(").replace(")", r"\)")):
        cli([*command, *args(tcmtd)])


def test_unreadable_data_of_a_finished_run_is_a_one_line_error(tmp_path, capsys):
    root = make_fixture(tmp_path / "tcmtd", sizes=(8, 4, 4))
    for f in (root / "lists").iterdir():
        shutil.copy(f, root / f.name)
    out = ["--profile", "smoke", "--tcmtd-list", str(root), "--runs-dir", str(tmp_path / "runs"),
           "--data-dir", str(tmp_path / "none"), "--seeds", "0"]
    assert cli(["plan", *out, "--json", "-"]) == 0
    [record] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    # A finished manifest of this config: whether it is still finished depends on the data's hash.
    manifest = {"status": "finished", "config_hash": record["config_hash"], "dataset": {"hash": "0" * 64}}
    (tmp_path / "runs" / record["run"] / "manifest.json").write_text(json.dumps(manifest))
    assert cli(["plan", *out]) == 0 and capsys.readouterr().out.startswith("stale ")
    (root / "images" / "test_000.png").unlink()
    (root / "images" / "test_001.png").unlink()
    for command in (["plan"], ["grid", "status"]):  # new processes: this one has the old data's hash cached
        done = subprocess.run([sys.executable, "-m", "ctranscnn", *command, *out], capture_output=True, text=True,
                              env={**os.environ, "PYTHONWARNINGS": "ignore"}, timeout=300)
        assert done.returncode == 1
        message = done.stderr.strip().splitlines()[-1]
        assert message.startswith(f"{' '.join(command)}: cannot read the data to check that finished runs used it: ")
        assert "missing image 'images/test_000.png' and 1 more" in message

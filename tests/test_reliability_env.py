"""scripts/env_check.py (what scripts/setup_env.sh asks): Python 3.10's tomli fallback, markers, clear reasons."""
from __future__ import annotations

import glob
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO

CHECK = REPO / "scripts" / "env_check.py"
# Run the check as Python 3.10 would: no tomllib; tomli (here: the stdlib parser under that name) instead.
AS_PY310 = ("import runpy, sys, tomllib; sys.modules['tomli'], sys.modules['tomllib'] = tomllib, None; "
            f"sys.argv = ['env_check', sys.argv[1]]; runpy.run_path({str(CHECK)!r}, run_name='__main__')")


def fake_repo(tmp_path: Path, deps: list[str], dev: list[str] = ()) -> Path:
    (tmp_path / "ctranscnn").mkdir(parents=True)
    (tmp_path / "ctranscnn" / "__init__.py").write_text("")
    (tmp_path / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [project]
        name = "ctranscnn"
        dependencies = {json.dumps(deps)}
        [project.optional-dependencies]
        dev = {json.dumps(list(dev))}
        """))
    return tmp_path


def check(repo: Path, py310: bool = False, on_path: bool = True) -> tuple[int, str]:
    args = [sys.executable, "-c", AS_PY310, str(repo)] if py310 else [sys.executable, str(CHECK), str(repo)]
    env = {"PYTHONPATH": str(repo)} if on_path else {}
    proc = subprocess.run(args, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", **env}, cwd=repo.parent)
    return proc.returncode, proc.stderr.strip()


@pytest.mark.parametrize("py310", [False, True])
def test_requirements_met_and_unmet(tmp_path, py310):
    import numpy

    ok = ["numpy>=1.0", "pytest>=7; python_version < '3'"]  # a marker that excludes the requirement
    assert check(fake_repo(tmp_path / "a", ok, ["pyyaml>=5"]), py310) == (0, "")
    assert check(fake_repo(tmp_path / "b", ["numpy>=999"]), py310) == (
        1, f"env_check: unmet requirement: numpy>=999 (installed: {numpy.__version__})")
    assert check(fake_repo(tmp_path / "c", ok, ["no-such-package-h4>=1"]), py310) == (
        1, "env_check: unmet requirement: no-such-package-h4>=1 (not installed)")


def test_package_from_another_checkout_is_unmet(tmp_path):
    code, reason = check(fake_repo(tmp_path, ["numpy"]), on_path=False)  # finds this checkout's ctranscnn
    assert code == 1 and reason == (f"env_check: unmet requirement: ctranscnn is installed from "
                                    f"{REPO / 'ctranscnn'}, not from {tmp_path}")


def test_tomli_is_a_dev_requirement_on_python_310_only():
    import tomllib

    from packaging.requirements import Requirement

    dev = [Requirement(r) for r in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
           ["optional-dependencies"]["dev"]]
    [tomli] = [r for r in dev if r.name == "tomli"]
    assert tomli.marker.evaluate({"python_version": "3.10"}) and not tomli.marker.evaluate({"python_version": "3.11"})


def python310() -> str | None:
    """A working Python 3.10 (pyenv's shims exist even where that version is not selected)."""
    for candidate in sorted(glob.glob("/root/.pyenv/versions/3.10.*/bin/python3.10")) + [shutil.which("python3.10")]:
        if candidate and subprocess.run([candidate, "-c", ""], capture_output=True).returncode == 0:
            return candidate
    return None


@pytest.mark.skipif(python310() is None, reason="no Python 3.10 interpreter here")
def test_real_python_310_gets_a_reason_not_a_traceback():
    proc = subprocess.run([python310(), "-I", str(CHECK), str(REPO)], capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("env_check: unmet requirement: ") and proc.stderr.count("\n") == 1

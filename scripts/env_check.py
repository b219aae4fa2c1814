"""Exit 0 when the environment running this script satisfies REPO's pyproject.toml (ctranscnn installed from REPO,
every main and `dev` requirement at an accepted version), else print the first unmet requirement and exit 1.

Used by scripts/setup_env.sh (run there with `python -I`, so the checkout's own folders cannot stand in for the
installed package). Runs on Python 3.10 too: tomllib is 3.11+, tomli (a `dev` dependency on 3.10) is the same
parser under another name.   Usage: python scripts/env_check.py REPO
"""
from __future__ import annotations

import importlib.metadata as md
import importlib.util
import sys
from pathlib import Path


def unmet(repo: Path) -> str | None:
    """Why the environment does not satisfy `repo`'s requirements, or None when it does."""
    try:
        import tomllib
    except ModuleNotFoundError:
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            return "tomli (needed on Python < 3.11 to read pyproject.toml) is not installed"
    try:
        from packaging.requirements import Requirement
    except ModuleNotFoundError:
        return "packaging is not installed"
    project = tomllib.loads((repo / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    spec = importlib.util.find_spec(project["name"])
    if spec is None or spec.origin is None:
        return f"{project['name']} is not installed"
    if not Path(spec.origin).resolve().is_relative_to(repo.resolve()):
        return f"{project['name']} is installed from {Path(spec.origin).parent}, not from {repo}"
    for requirement in map(Requirement, project["dependencies"] + project["optional-dependencies"]["dev"]):
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue  # e.g. tomli on Python >= 3.11
        try:
            version = md.version(requirement.name)
        except md.PackageNotFoundError:
            return f"{requirement} (not installed)"
        if not requirement.specifier.contains(version, prereleases=True):
            return f"{requirement} (installed: {version})"
    return None


if __name__ == "__main__":
    reason = unmet(Path(sys.argv[1]))
    if reason:
        print(f"env_check: unmet requirement: {reason}", file=sys.stderr)
    sys.exit(1 if reason else 0)

"""Where a table or figure came from: data, split, profile, seeds, code version and date."""
from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

_REPO = Path(__file__).resolve().parents[2]


def git_commit(repo: str | Path = _REPO) -> str:
    """HEAD commit of `repo`, suffixed "-dirty" when tracked files other than the regenerated outputs
    (results/, figures/) differ from it; "unknown" outside git."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results",
                         ":(exclude)figures"))
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return commit + ("-dirty" if dirty else "")


@dataclass
class Provenance:
    """Footer printed under every table (and kept beside every figure): enough to regenerate it."""

    data: str
    split: str
    profile: str
    seeds: Sequence[int] = ()
    commit: str = ""
    date: str = ""
    notes: list[str] = field(default_factory=list)

    @classmethod
    def collect(cls, data: str, split: str, profile: str, seeds: Sequence[int] = (), notes: Sequence[str] = ()) -> "Provenance":
        """Fill commit and date from the current checkout and clock."""
        date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        return cls(data, split, profile, tuple(seeds), git_commit(), date, list(notes))

    def lines(self) -> list[str]:
        seeds = ", ".join(map(str, self.seeds)) or "n/a"
        out = [
            f"data: {self.data}",
            f"split: {self.split}",
            f"profile: {self.profile}",
            f"seeds: {seeds}",
            f"git commit: {self.commit or 'unknown'}",
            f"date: {self.date or 'unknown'}",
        ]
        return out + [f"note: {n}" for n in self.notes]

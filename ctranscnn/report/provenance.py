"""Where a table or figure came from: data, split, profile, seeds, code version and date."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Sequence

from ctranscnn.engine.setup import git_commit  # provenance of runs and of tables is one function


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

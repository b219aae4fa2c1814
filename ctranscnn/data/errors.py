"""Bad-input reporting: every problem names its file and line (or field); all of them are collected in one pass."""
from __future__ import annotations

import re
from pathlib import Path

SHOWN = 20  # problems listed in an exception message; `data check` prints all of them
_WORKER_TRACEBACK = re.compile(r"Caught DataError in DataLoader worker .*?^[\w.]*DataError: (.*)\Z", re.S | re.M)


class DataError(ValueError):
    """Input data is unusable. `problems` lists every problem found, each as 'file:line: what'."""

    def __init__(self, problems: list[str] | str):
        if isinstance(problems, str):
            # torch's DataLoader re-raises a worker's error as DataError(<its whole traceback as text>):
            # keep only the original message, so a bad image stays a one-line error in the main process.
            worker = _WORKER_TRACEBACK.match(problems)
            problems = worker.group(1).rstrip("\n") if worker else problems
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        more = len(self.problems) - SHOWN
        text = "\n  ".join(self.problems[:SHOWN]) + (f"\n  ... and {more} more" if more > 0 else "")
        super().__init__(f"{len(self.problems)} data problem(s):\n  {text}" if len(self.problems) > 1 else text)


class Problems:
    """Collects problems so a loader can report all of them at once instead of stopping at the first."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str | Path, message: str, line: int | None = None) -> None:
        self.items.append(f"{where}:{line}: {message}" if line is not None else f"{where}: {message}")

    def fatal(self, where: str | Path, message: str) -> DataError:
        """A problem that stops loading: returned as an error carrying everything collected so far."""
        self.add(where, message)
        return DataError(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise DataError(self.items)

    def __len__(self) -> int:
        return len(self.items)


def bomb_message(err: Exception) -> str:
    """Why an image over Pillow's decompression-bomb pixel limit is refused, and how to accept a trusted one."""
    return (f"image too large to decode ({err}); if the file is trusted, raise PIL.Image.MAX_IMAGE_PIXELS "
            "or downscale it")

"""Bad-input reporting: every problem names its file and line (or field); all of them are collected in one pass."""
from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

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


def read_text(path: Path, problems: Problems) -> str:
    """A metadata text file as UTF-8; a file in another encoding stops loading with an error naming it."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise problems.fatal(path, f"not UTF-8 text (byte {e.start}: {e.reason}); save it as UTF-8") from None


def read_csv(path: Path, problems: Problems) -> pd.DataFrame:
    """A metadata CSV (optionally .gz), every value as text; an unparsable file stops loading with an error naming
    it (pandas' own errors name no file)."""
    import pandas as pd

    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except UnicodeDecodeError as e:
        raise problems.fatal(path, f"not UTF-8 text (byte {e.start}: {e.reason}); save it as UTF-8") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, EOFError, OSError) as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise problems.fatal(path, f"not a readable CSV file ({reason})") from None

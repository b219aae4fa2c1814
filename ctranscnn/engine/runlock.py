"""Exclusive use of a run folder: one training (or resumption) at a time, and a run folder that can be written.

The lock is an flock(2) on `<run>/.lock`, held for the life of the training process. The kernel drops it when
that process ends in any way (kill -9 included), so a stale lock file never blocks a resume; while it is held,
the file names the holder (pid, host, start time) for the error a second process gets, and for readers
(`grid status`, `evaluate`) that must tell a live "running" run from one whose process died.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path


_HELD: set[int] = set()  # this process's lock file descriptors


def _release_in_child() -> None:
    # A forked child (DataLoader worker, decode pool) shares the lock with its parent; if it kept the descriptor,
    # a killed trainer's folder would stay locked until its orphaned workers noticed and exited.
    for fd in _HELD:
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


os.register_at_fork(after_in_child=_release_in_child)


class RunFolderError(RuntimeError):
    """The run folder cannot be used: another process trains in it, or it cannot be written."""


def lock_file(folder: Path) -> Path:
    return Path(folder) / ".lock"


class RunLock:
    """`with RunLock(folder):` holds the folder's lock, or raises RunFolderError naming the process holding it."""

    def __init__(self, folder: str | Path, what: str = "train"):
        self.folder, self.what = Path(folder), what
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        self.folder.mkdir(parents=True, exist_ok=True)
        # O_CREAT without O_TRUNC: opening must not wipe the holder's record before the lock is known to be free.
        fd = os.open(lock_file(self.folder), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunFolderError(f"{self.folder}: in use by {describe(read_holder(self.folder))}; wait for it to "
                                 "end, or choose another train.run_name") from None
        record = {"pid": os.getpid(), "host": socket.gethostname(), "what": self.what,
                  "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        self._fd = fd
        _HELD.add(fd)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # no holder any more; the empty file stays (removing it would race)
            _HELD.discard(self._fd)
            os.close(self._fd)  # closing releases the flock
            self._fd = None


def read_holder(folder: Path) -> dict:
    """The record the holder wrote ({} if unreadable, e.g. caught between its truncate and write)."""
    try:
        return json.loads(lock_file(folder).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def holder(folder: str | Path) -> dict | None:
    """Who holds the folder's lock now ({} if held but unnamed), or None when no live process holds it."""
    path = lock_file(Path(folder))
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # no lock file (never trained here), or not ours to read: no holder we can tell of
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return read_holder(Path(folder))
    finally:
        os.close(fd)  # also releases the probe's shared lock if it got one
    return None


def describe(record: dict) -> str:
    """'process 123 on host (train since ...)' from a holder record."""
    if not record:
        return "another process"
    return f"process {record.get('pid')} on {record.get('host')} ({record.get('what')} since {record.get('since')})"


def check_writable(*folders: Path) -> None:
    """Create each folder and prove it writable with a probe file, so a read-only destination fails before any
    data is read or any step is trained (and names the folder, not a temporary file inside it)."""
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / f".write-probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as err:
            raise RunFolderError(f"{folder}: cannot write the run there ({err.strerror or err}); choose another "
                                 "train.out_dir or fix its permissions") from None

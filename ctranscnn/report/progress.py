"""Progress a person can follow when runs train side by side in worker processes: every line a run prints
carries its label, and a finished run gets a one-line summary."""
from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path
from typing import Iterator


class _Prefixed(io.TextIOBase):
    """A text stream that writes each complete line to `out` behind `prefix`."""

    def __init__(self, out, prefix: str):
        self.out, self.prefix, self.buf = out, prefix, ""

    def write(self, s: str) -> int:
        self.buf += s
        *lines, self.buf = self.buf.split("\n")
        for line in lines:
            self.out.write(f"{self.prefix}{line}\n")
        self.out.flush()
        return len(s)

    def flush(self) -> None:
        if self.buf:
            self.out.write(f"{self.prefix}{self.buf}\n")
            self.buf = ""
        self.out.flush()


@contextlib.contextmanager
def labelled_output(label: str) -> Iterator[None]:
    """Every printed line inside the block starts with `[label] `, so runs trained side by side stay readable."""
    stream = _Prefixed(sys.stdout, f"[{label}] ")
    try:
        with contextlib.redirect_stdout(stream):
            yield
    finally:
        stream.flush()


def run_label(cfg) -> str:
    """A short name for a run's output lines: dataset, model, variant, split, seed (the folder name less profile
    and hash)."""
    name = cfg.train.run_name
    return name.rsplit("_", 1)[0].replace(f"_{cfg.profile}_", "_") if name else str(cfg.model.name)


def run_summary(run_dir: str | Path) -> str:
    """One line for a finished run: test mean AUC (CI) of the best checkpoint, its epoch, wall time."""
    from ctranscnn.engine.rundir import RunDir

    run = RunDir(run_dir)
    m = run.metrics["best"]
    test = m["test"]
    lo, hi = test.get("ci95", {}).get("mAUC", [float("nan")] * 2)
    wall = run.manifest.get("wall_time_s") or float("nan")
    return (f"done: test mean AUC {test['mAUC']:.2f} (95% CI {lo:.2f}-{hi:.2f}), mAP {test['mAP']:.2f}, best epoch "
            f"{m['epoch']}, {wall:.0f} s")

"""Where training workers run: one run per visible GPU, a group of GPUs per run (DDP via torchrun), or CPU.

A slot is what one worker may use. Workers are pinned with CUDA_VISIBLE_DEVICES, set before the worker
initialises CUDA, so inside a worker its GPU(s) are cuda:0.. and the engine needs no device index. A slot of
several GPUs trains each run as one DDP job: `torchrun --nproc_per_node=<its GPUs> -m ctranscnn train
--resume RUN_DIR`. Everything here is a function of the device list, so tests fake GPUs on a CPU machine.

RUN_GPUS (environment, read by `worker_slots`): 1 (default) = one run per GPU, up to N runs at once;
k = groups of k GPUs, each run DDP over its group; all = every run DDP over all visible GPUs, one at a time.
The slot of every run is recorded in its manifest (`placement`).
"""
from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence, TypeVar

from ctranscnn.engine.config import ConfigError, RunConfig

PLACEMENT_ENV = "CTRANSCNN_PLACEMENT"  # the slot of the process, as JSON (read back by `placement`)
MODES = ("cpu", "gpu", "ddp")  # CPU worker | one GPU per run | several GPUs per run (torchrun)
T, R = TypeVar("T"), TypeVar("R")


@dataclass(frozen=True)
class Slot:
    mode: str  # one of MODES
    gpus: tuple[str, ...] = ()  # CUDA_VISIBLE_DEVICES entries (indices or UUIDs) of this slot

    def env(self) -> dict[str, str]:
        """Environment that pins a process to this slot (a CPU slot hides every GPU)."""
        return {PLACEMENT_ENV: json.dumps({"mode": self.mode, "gpus": list(self.gpus)}),
                "CUDA_VISIBLE_DEVICES": ",".join(self.gpus)}


def visible_gpus() -> list[str]:
    """The GPUs this process may use: CUDA_VISIBLE_DEVICES' entries when set, else 0..device_count-1."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def gpu_slots(devices: Sequence[str], run_gpus: str = "1") -> list[Slot]:
    """Slots over `devices`: groups of `run_gpus` GPUs ('all': one group of every device); GPUs left over
    after the last full group stay idle (a DDP run needs its group's size fixed, and resumes with it)."""
    devices = list(devices)
    if not devices:
        return []
    size = len(devices) if str(run_gpus) == "all" else _positive_int(run_gpus)
    if size > len(devices):
        raise ConfigError(f"RUN_GPUS={run_gpus} but only {len(devices)} GPU(s) are visible")
    return [Slot("gpu" if size == 1 else "ddp", tuple(devices[i:i + size]))
            for i in range(0, len(devices) - size + 1, size)]


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError(f"RUN_GPUS must be a positive number of GPUs per run or 'all', got {value!r}")
    return n


def uses_gpu(cfg: RunConfig) -> bool:
    if cfg.train.device == "cpu":
        return False
    if cfg.train.device == "cuda":
        return True
    import torch

    return torch.cuda.is_available()


def worker_slots(cfg: RunConfig, devices: Sequence[str] | None = None, run_gpus: str | None = None,
                 cpus: int | None = None) -> list[Slot]:
    """One slot per worker that may train beside the others. GPU: `gpu_slots` of the visible devices (or
    `devices`). CPU with a fixed thread count per run: one worker per group of `cpu_threads` cores (a run's
    numbers do not depend on what trains beside it); CPU with torch's default threads: one worker."""
    if uses_gpu(cfg) or devices is not None:
        slots = gpu_slots(visible_gpus() if devices is None else devices,
                          os.environ.get("RUN_GPUS", "1") if run_gpus is None else run_gpus)
        if slots:
            return slots
        if cfg.train.device == "cuda":
            raise ConfigError("train.device is 'cuda' but no GPU is visible")
    if cfg.train.cpu_threads < 1:
        return [Slot("cpu")]
    return [Slot("cpu")] * max(1, (cpus or os.cpu_count() or 1) // cfg.train.cpu_threads)


# ---------------------------------------------------------------- pinned workers

_slot: Slot | None = None  # this worker's slot (set by _pin in pool workers, by `pinned` in-process)


def _pin(queue) -> None:
    """Pool-worker initializer: take a free slot and pin this process to it, before anything touches CUDA."""
    global _slot
    _slot = queue.get()
    os.environ.update(_slot.env())


def pool(slots: Sequence[Slot]) -> ProcessPoolExecutor:
    """A process pool of len(slots) spawned workers, each pinned to its own slot for its lifetime."""
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no CUDA state inherited from the parent
    queue = ctx.Queue()
    for slot in slots:
        queue.put(slot)
    return ProcessPoolExecutor(len(slots), mp_context=ctx, initializer=_pin, initargs=(queue,))


def set_slot(slot: Slot | None) -> None:
    """The slot of this (unpinned) process, for the sequential path: a CPU or single-GPU slot trains in this
    process as it is; a DDP slot launches each run as a torchrun job."""
    global _slot
    _slot = slot


def placement() -> dict:
    """What the manifest records: mode (cpu | gpu | ddp, or 'direct' when not launched through a slot), the
    slot's GPUs, and CUDA_VISIBLE_DEVICES as this process saw it."""
    if _slot is not None:
        where = {"mode": _slot.mode, "gpus": list(_slot.gpus)}
    else:  # a torchrun rank of a DDP slot, or a run started by hand
        where = json.loads(os.environ.get(PLACEMENT_ENV, "null")) or {"mode": "direct", "gpus": []}
    return {**where, "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}


def map_pinned(fn: Callable[[T], R], items: Sequence[T], slots: Sequence[Slot]) -> list[R]:
    """[fn(x) for x in items], up to len(slots) at once, each call in a worker pinned to one slot. With one
    slot (or one item) in this process, on the first slot."""
    if len(slots) <= 1 or len(items) <= 1:
        set_slot(slots[0] if slots else None)
        try:
            return [fn(x) for x in items]
        finally:
            set_slot(None)
    with pool(slots[:len(items)]) as workers:
        return list(workers.map(fn, items))


# ---------------------------------------------------------------- launching a run


def train_command(run_dir: str | Path, nproc: int = 1, overrides: dict | None = None) -> list[str]:
    """The command line that trains (or continues) the run whose folder holds config.yaml or a checkpoint:
    `python -m ctranscnn train --resume RUN_DIR`, under torchrun when nproc > 1."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] \
        if nproc > 1 else [sys.executable]
    sets = [f"{k}={json.dumps(v)}" for k, v in (overrides or {}).items()]  # JSON is YAML: strings stay strings
    return launcher + ["-m", "ctranscnn", "train", "--resume", str(run_dir)] + (["--set", *sets] if sets else [])


def launch(run_dir: Path, cfg: RunConfig | None = None, overrides: dict | None = None) -> None:
    """Train the run `cfg` (new) or continue the run in `run_dir` (cfg None) on this process's slot: in this
    process, or for a DDP slot as a torchrun job over the slot's GPUs (pinned in the job's environment)."""
    from ctranscnn.engine.trainer import resume, train

    if _slot is None or _slot.mode != "ddp":
        if cfg is not None:
            train(cfg)
        else:
            resume(run_dir, overrides)
        return
    if cfg is not None:
        write_config(run_dir, cfg)
    done = subprocess.run(train_command(run_dir, len(_slot.gpus), overrides), env={**os.environ, **_slot.env()})
    if done.returncode != 0:
        raise RuntimeError(f"torchrun training of {run_dir} failed (exit {done.returncode}); "
                           "rerun to resume it from its last checkpoint")


def write_config(run_dir: Path, cfg: RunConfig) -> None:
    """config.yaml of a run not started yet, so `train --resume RUN_DIR` starts it (the engine rewrites it
    when the run starts; a folder that holds a checkpoint is never touched)."""
    from ctranscnn.engine.rundir import RunDir

    run = RunDir(run_dir)
    if not run.has_checkpoint("last"):
        run.write_config(cfg)

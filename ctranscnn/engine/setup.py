"""Run setup: what a run needs before its first step, shared by training, evaluation, prediction, the report
and the benchmarks: device, seeding, autocast, preprocessing, the data and its hashes, the model, and the
facts a manifest records (package versions, device, git commit).

The data of one setting (dataset, root, lists, split, split seed, shares, limits) is read once per process
and its hashes computed once: a notebook asks for a run's data hash, the trainer for its images and the
split table for its leakage, and all three get the same objects.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import random
import subprocess
import time
from contextlib import nullcontext
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ctranscnn.data.records import LabelledImages
from ctranscnn.data.splits import load_splits
from ctranscnn.data.transforms import PreprocessConfig
from ctranscnn.engine.config import _DETERMINISTIC_BOOL, DETERMINISTIC, ConfigError, RunConfig, resolve_model_name
from ctranscnn.engine.distributed import Dist

_REPO = Path(__file__).resolve().parents[2]


def select_device(cfg: RunConfig, local_rank: int = 0) -> torch.device:
    want = cfg.train.device
    if want == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device is 'cuda' but no CUDA device is available")
    if want == "cuda" or (want == "auto" and torch.cuda.is_available()):
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def seed_everything(seed: int, deterministic: str | bool = "warn") -> None:
    """Seed Python, numpy and torch and apply train.deterministic ('strict' | 'warn' | 'off'; True/False as 'warn'/
    'off'; what each means: TrainConfig). Every flag is set in every mode, since they are process-wide and an
    earlier run in the same process may have set them. Call it before the first CUDA kernel: cuBLAS reads
    CUBLAS_WORKSPACE_CONFIG when it starts."""
    mode = _DETERMINISTIC_BOOL.get(deterministic, deterministic)
    if mode not in DETERMINISTIC:
        raise ConfigError(f"train.deterministic must be strict, warn or off, got {deterministic!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if mode == "strict" and os.environ.get("CUBLAS_WORKSPACE_CONFIG", ":4096:8") not in (":4096:8", ":16:8"):
        raise ConfigError(f"train.deterministic strict needs CUBLAS_WORKSPACE_CONFIG :4096:8 or :16:8, the "
                          f"environment has {os.environ['CUBLAS_WORKSPACE_CONFIG']!r}")
    if mode != "off":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(mode != "off", warn_only=mode == "warn")
    torch.backends.cudnn.benchmark = mode == "off"
    torch.backends.cudnn.deterministic = mode != "off"


# Loader workers for data.num_workers='auto' on CUDA: the best training rate measured for the paper recipe
# (results/gpu/gpu_check.md: ctranscnn_tiny, 224 px, batch 32, bf16, CUDA graph, H200: 625 images/s), with 50%
# headroom so the loader never sets the pace; the per-worker rate is timed on the run's own decode cache.
AUTO_WORKERS_TARGET_IPS = 1.5 * 625


def auto_workers(per_worker_ips: float, target_ips: float = AUTO_WORKERS_TARGET_IPS,
                 cpus: int | None = None) -> int:
    """min(cpus - 1, ceil(target / per-worker rate)), at least 1: one core stays with the training process."""
    cpus = cpus or os.cpu_count() or 1
    return max(1, min(cpus - 1, math.ceil(target_ips / max(per_worker_ips, 1e-9))))


def loader_workers(cfg: RunConfig, device: torch.device, dataset: torch.utils.data.Dataset, probe: int = 32) -> int:
    """data.num_workers, with 'auto' resolved: 0 on CPU (the CPU profiles' choice: decoding from the cache costs
    far less than a training step), on CUDA auto_workers of the rate at which this process reads and
    preprocesses `probe` images of `dataset` (from its decode cache when it has one)."""
    workers = cfg.data.num_workers
    if workers != "auto":
        return int(workers)
    if device.type != "cuda" or len(dataset) == 0:
        return 0
    n = min(probe, len(dataset))
    t0 = time.perf_counter()
    for i in range(n):
        dataset[i]
    return auto_workers(n / max(time.perf_counter() - t0, 1e-9))


def autocast_for(cfg: RunConfig, device: torch.device, cache: bool = True):
    """A zero-argument context factory: torch.autocast at train.amp's dtype, or a no-op. `cache=False` for a
    step captured in a CUDA graph: autocast's cast cache must not carry casts from one replay to the next."""
    if cfg.train.amp == "none":
        return nullcontext
    if cfg.train.amp == "fp16" and device.type != "cuda":
        raise ConfigError("train.amp 'fp16' needs CUDA; use 'bf16' on CPU")
    dtype = torch.bfloat16 if cfg.train.amp == "bf16" else torch.float16
    return partial(torch.autocast, device_type=device.type, dtype=dtype, cache_enabled=cache)


def preprocess_for(cfg: RunConfig) -> PreprocessConfig:
    # The flip is applied by the engine (sampling.flip_mask), so the dataset's own flip is unused.
    return PreprocessConfig(size=cfg.data.image_size, flip_p=0.5 if cfg.data.hflip else 0.0)


# ---------------------------------------------------------------- data, read once per setting

_DATA: dict[tuple, dict[str, LabelledImages]] = {}
_HASHES: dict[tuple, dict[str, str]] = {}
_CACHED_SETTINGS = 16  # a notebook touches a handful of data settings; bound the memory anyway


_NOT_READ = ("num_workers", "cache_dir", "image_size", "hflip")  # data settings that do not change which images


def _data_key(cfg: RunConfig) -> tuple:
    """Every data setting that decides the images and labels (dataset, root, lists, split, seed, shares, limits)."""
    root = Path(cfg.data.root)
    # The folder's identity too: data regenerated in place (rm -rf, then written again) is read afresh.
    stat = root.stat() if root.exists() else None
    ident = (str(root.resolve()), stat.st_ino, stat.st_mtime_ns) if stat else None
    return ident, tuple((k, repr(v)) for k, v in sorted(vars(cfg.data).items()) if k not in _NOT_READ)


def load_data(cfg: RunConfig) -> dict[str, LabelledImages]:
    """The run's train/val/test splits, after its data.limit_* subsets (read once per data setting)."""
    d = cfg.data
    if not d.root:
        raise ConfigError("data.root is empty: set it to the dataset folder (--set data.root=PATH)")
    key = _data_key(cfg)
    if key not in _DATA:
        splits = load_splits(d.dataset, d.root, d.split, d.lists or None, seed=d.split_seed, fractions=d.fractions,
                             missing=d.missing)
        limits = {"train": d.limit_train, "val": d.limit_val, "test": d.limit_test}
        for name, limit in limits.items():
            if limit and limit < len(splits[name]):
                # A seeded subset, in the split's own order; seeded by the split seed so every run sees it.
                keep = np.sort(np.random.default_rng([d.split_seed, len(splits[name])]).choice(
                    len(splits[name]), limit, replace=False))
                splits[name] = splits[name].take(keep, name)
        if len(_DATA) >= _CACHED_SETTINGS:
            _DATA.pop(next(iter(_DATA)))
        _DATA[key] = splits
    return dict(_DATA[key])  # a new dict: callers may rebind a split without touching the cache


def data_hashes(splits: dict[str, LabelledImages]) -> dict[str, str]:
    """SHA-256 of each split's membership and labels (LabelledImages.sha256)."""
    return {name: records.sha256() for name, records in splits.items()}


def split_hashes(cfg: RunConfig) -> dict[str, str]:
    """data_hashes(load_data(cfg)), computed once per data setting."""
    key = _data_key(cfg)
    if key not in _HASHES:
        if len(_HASHES) >= _CACHED_SETTINGS:
            _HASHES.pop(next(iter(_HASHES)))
        _HASHES[key] = data_hashes(load_data(cfg))
    return dict(_HASHES[key])


def dataset_hash(hashes: dict[str, str]) -> str:
    """One hash of all splits: what a manifest records and run reuse compares."""
    return hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------- model


def build_model(cfg: RunConfig, num_classes: int, name: str = "", fast: bool | None = None) -> tuple[nn.Module, str]:
    """The run's model, built once (`name` defaults to the config's, resolved to the profile's size; `fast`
    defaults to train.fast, which turns on the exact speed paths of CTransCNN/Conformer only)."""
    from ctranscnn.registry import create_model

    name = name or resolve_model_name(cfg.model)
    try:
        model = create_model(name, num_classes, fast=cfg.train.fast if fast is None else fast,
                             **cfg.model.overrides)
    except TypeError as err:
        raise ConfigError(f"model.overrides {cfg.model.overrides} do not fit {name}: {err}") from err
    return model, name


# ---------------------------------------------------------------- provenance


def package_versions() -> dict[str, str]:
    import pandas as pd
    import sklearn
    import timm
    import torchvision

    import ctranscnn

    return {"python": platform.python_version(), "ctranscnn": ctranscnn.__version__, "torch": torch.__version__,
            "torchvision": torchvision.__version__, "timm": timm.__version__, "numpy": np.__version__,
            "pandas": pd.__version__, "scikit-learn": sklearn.__version__}


def describe_device(device: torch.device, dist: Dist) -> str:
    what = (torch.cuda.get_device_name(device) if device.type == "cuda"
            else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)")
    return f"{what} x {dist.world} process(es)"


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

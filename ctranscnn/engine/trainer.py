"""Training loop: the authors' recipe, exact mid-epoch resume, DDP, best/last checkpoints and run outputs.

A run folder holds config.yaml, manifest.json, history.{csv,json}, checkpoints/{last,best}.pt,
predictions_{val,test}.csv (best checkpoint) and predictions_{val,test}_last.csv, metrics.json and
splits/ (membership files with SHA-256). Everything a table needs is recomputable from these files.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import random
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import yaml
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from ctranscnn.data.dataset import ImageDataset, build_loader
from ctranscnn.data.records import LabelledImages
from ctranscnn.data.splits import load_splits, save_split_files
from ctranscnn.data.transforms import PreprocessConfig
from ctranscnn.engine import checkpoint as ckpt_io
from ctranscnn.engine.config import (UNHASHED, ConfigError, RunConfig, config_hash, from_dict, resolve_model_name,
                                     set_key, to_dict)
from ctranscnn.engine.distributed import Dist, init_distributed, shutdown
from ctranscnn.engine.evaluation import predict, predictions_frame, sigmoid, split_metrics, write_predictions
from ctranscnn.metrics import tune_thresholds
from ctranscnn.engine.optim import build_optimizer, build_scheduler
from ctranscnn.engine.sampling import EpochBatches, flip_mask
from ctranscnn.losses import build_loss
from ctranscnn.report.atomic import atomic_path, atomic_write_text
from ctranscnn.report.provenance import git_commit

METRIC_COLUMNS = ("mAUC", "mAP", "CP", "CR", "CF1", "OP", "OR", "OF1")


@dataclass
class TrainState:
    step: int = 0  # optimizer steps done
    epochs_done: int = 0  # epochs whose validation is recorded
    epoch_loss: list[float] = field(default_factory=lambda: [0.0, 0.0])  # running (sum, images) of this epoch
    best_val_mauc: float = -math.inf
    best_epoch: int = 0
    history: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0  # in training steps (images/s is train_images / train_seconds)
    train_images: int = 0
    wall_seconds: float = 0.0  # everything, evaluation and checkpoints included, summed over restarts
    finished: bool = False


# ---------------------------------------------------------------- setup


def select_device(cfg: RunConfig, local_rank: int) -> torch.device:
    want = cfg.train.device
    if want == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device is 'cuda' but no CUDA device is available")
    if want == "cuda" or (want == "auto" and torch.cuda.is_available()):
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        # Ops without a deterministic kernel warn instead of failing, so every model still runs on GPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def autocast_for(cfg: RunConfig, device: torch.device):
    if cfg.train.amp == "none":
        return nullcontext
    if cfg.train.amp == "fp16" and device.type != "cuda":
        raise ConfigError("train.amp 'fp16' needs CUDA; use 'bf16' on CPU")
    dtype = torch.bfloat16 if cfg.train.amp == "bf16" else torch.float16
    return partial(torch.autocast, device_type=device.type, dtype=dtype)


def preprocess_for(cfg: RunConfig) -> PreprocessConfig:
    # The flip is applied by the engine (sampling.flip_mask), so the dataset's own flip is unused.
    return PreprocessConfig(size=cfg.data.image_size, flip_p=0.5 if cfg.data.hflip else 0.0)


def load_data(cfg: RunConfig) -> dict[str, LabelledImages]:
    d = cfg.data
    if not d.root:
        raise ConfigError("data.root is empty: set it to the dataset folder (--set data.root=PATH)")
    splits = load_splits(d.dataset, d.root, d.split, d.lists or None, seed=d.split_seed, fractions=d.fractions)
    limits = {"train": d.limit_train, "val": d.limit_val, "test": d.limit_test}
    for name, limit in limits.items():
        if limit and limit < len(splits[name]):
            # A seeded subset, in the split's own order; seeded by the split seed so every run sees it.
            keep = np.sort(np.random.default_rng([d.split_seed, len(splits[name])]).choice(
                len(splits[name]), limit, replace=False))
            splits[name] = splits[name].take(keep, name)
    return splits


def data_hashes(splits: dict[str, LabelledImages]) -> dict[str, str]:
    """SHA-256 of each split's membership and labels (LabelledImages.sha256)."""
    return {name: records.sha256() for name, records in splits.items()}


def dataset_hash(hashes: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()


def run_dir_for(cfg: RunConfig) -> Path:
    name = cfg.train.run_name or (f"{cfg.data.dataset}_{resolve_model_name(cfg.model)}_{cfg.profile}"
                                  f"_s{cfg.train.seed}")
    return Path(cfg.train.out_dir) / name


def build_model(cfg: RunConfig, num_classes: int, name: str = "") -> tuple[nn.Module, str]:
    """The run's model (`name` defaults to the config's, resolved to the profile's size)."""
    from ctranscnn import create_model
    from ctranscnn.models.ctranscnn import CTransCNN, FAST_SWITCHES

    name = name or resolve_model_name(cfg.model)
    try:
        model = create_model(name, num_classes, **cfg.model.overrides)
        if cfg.train.fast and isinstance(model, CTransCNN):
            model = create_model(name, num_classes, **{**FAST_SWITCHES, **cfg.model.overrides})
    except TypeError as err:
        raise ConfigError(f"model.overrides {cfg.model.overrides} do not fit {name}: {err}") from err
    return model, name


class Branches(nn.Module):
    """forward(x) -> branch logits dict: the training forward, as one module for DDP and torch.compile."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model.forward_head(self.model.forward_features(x))


def package_versions() -> dict[str, str]:
    import sklearn
    import timm
    import torchvision

    import ctranscnn

    return {"python": platform.python_version(), "ctranscnn": ctranscnn.__version__, "torch": torch.__version__,
            "torchvision": torchvision.__version__, "timm": timm.__version__, "numpy": np.__version__,
            "pandas": pd.__version__, "scikit-learn": sklearn.__version__}


def describe_device(device: torch.device, dist: Dist) -> str:
    what = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    return f"{what} x {dist.world} process(es)"


def write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


# ---------------------------------------------------------------- the run


class Trainer:
    def __init__(self, cfg: RunConfig, run_dir: Path, resume: dict | None = None):
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.device = select_device(cfg, int(os.environ.get("LOCAL_RANK", "0")))
        self.dist = init_distributed(self.device)
        if cfg.train.batch_size < self.dist.world:
            raise ConfigError(f"train.batch_size {cfg.train.batch_size} is smaller than the {self.dist.world} ranks")
        if cfg.train.cpu_threads:
            torch.set_num_threads(cfg.train.cpu_threads)
        seed_everything(cfg.train.seed, cfg.train.deterministic)
        self.splits = load_data(cfg)
        self.classes = self.splits["train"].classes
        self.hashes = data_hashes(self.splits)
        self.preprocess = preprocess_for(cfg)
        self.model, self.model_name = build_model(cfg, len(self.classes))
        if cfg.train.sync_bn and self.dist.enabled:
            if self.device.type != "cuda":
                raise ConfigError("train.sync_bn needs CUDA (SyncBatchNorm has no CPU kernel)")
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.model.to(self.device)
        if cfg.train.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.optimizer = build_optimizer(self.model, cfg.optim)
        self.batches = EpochBatches(len(self.splits["train"]), cfg.train.batch_size, cfg.train.seed,
                                    self.dist.rank, self.dist.world)
        self.steps_per_epoch = self.batches.num_batches
        self.total_steps = self.steps_per_epoch * cfg.schedule.epochs
        self.scheduler = build_scheduler(self.optimizer, self.total_steps, cfg.schedule)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.train.amp == "fp16")
        self.autocast = autocast_for(cfg, self.device)
        self.loss_fn = build_loss(cfg.loss)
        self.state = TrainState()
        self._mark = time.perf_counter()  # wall-clock accounting (see save)
        self.last_lr = float("nan")  # learning rate of the latest step, for the history
        if resume is not None:
            self._restore(resume)
        forward = Branches(self.model)
        if self.dist.enabled:
            # find_unused_parameters: the authors' head carries a never-used Linear (spec §7.5).
            forward = DistributedDataParallel(forward, device_ids=[self.device.index] if self.device.type == "cuda"
                                              else None, find_unused_parameters=True)
        self.forward = torch.compile(forward) if cfg.train.compile else forward

    # ---- checkpoints

    def _payload(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "state": asdict(self.state),
            "rng": self.dist.gather(ckpt_io.rng_state()),
            "config": to_dict(self.cfg),
            "config_hash": config_hash(self.cfg),
            "model_name": self.model_name,
            "classes": list(self.classes),
            "preprocess": self.preprocess.to_dict(),
            "split_hashes": self.hashes,
            "world_size": self.dist.world,
        }

    def save(self, best: bool = False) -> None:
        now = time.perf_counter()
        self.state.wall_seconds += now - self._mark
        self._mark = now
        payload = self._payload()  # every rank takes part in gathering the RNG states
        if self.dist.main:
            # best first: a kill in between leaves last.pt one epoch behind, and that epoch is redone.
            if best:
                ckpt_io.save_checkpoint(self.run_dir / "checkpoints" / "best.pt", payload)
            ckpt_io.save_checkpoint(self.run_dir / "checkpoints" / "last.pt", payload)
        self.dist.barrier()

    def _restore(self, ckpt: dict) -> None:
        if ckpt["split_hashes"] != self.hashes:
            changed = [k for k in self.hashes if ckpt["split_hashes"].get(k) != self.hashes[k]]
            raise ConfigError(f"cannot resume: the {', '.join(changed)} split(s) differ from the checkpoint's "
                              "(different images or labels)")
        if ckpt["world_size"] != self.dist.world:
            raise ConfigError(f"cannot resume a {ckpt['world_size']}-process run with {self.dist.world} processes")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.state = TrainState(**ckpt["state"])
        ckpt_io.set_rng_state(ckpt["rng"][self.dist.rank])

    # ---- loops

    def loaders(self) -> tuple[DataLoader, DataLoader]:
        d = self.cfg.data
        cache = Path(d.cache_dir) if d.cache_dir else None
        train_set = ImageDataset(self.splits["train"], self.preprocess, train=False, cache_dir=cache)
        # Own generator: creating an iterator must not draw from the global RNG that drop-path uses.
        train = DataLoader(train_set, batch_sampler=self.batches, num_workers=d.num_workers,
                           persistent_workers=d.num_workers > 0, pin_memory=self.device.type == "cuda",
                           generator=torch.Generator().manual_seed(self.cfg.train.seed))
        return train, self.eval_loader("val")

    def eval_loader(self, split: str) -> DataLoader:
        d = self.cfg.data
        dataset = ImageDataset(self.splits[split], self.preprocess, train=False,
                               cache_dir=Path(d.cache_dir) if d.cache_dir else None)
        return build_loader(dataset, self.cfg.eval.batch_size, shuffle=False, seed=self.cfg.train.seed,
                            num_workers=d.num_workers, distributed=self.dist.enabled)

    def train_epoch(self, loader: DataLoader, epoch: int) -> float:
        cfg, state = self.cfg, self.state
        start = state.step - epoch * self.steps_per_epoch
        self.batches.set_epoch(epoch, start)
        flips = torch.from_numpy(flip_mask(len(self.splits["train"]), cfg.train.seed, epoch)) if cfg.data.hflip \
            else torch.zeros(len(self.splits["train"]), dtype=torch.bool)
        self.model.train()
        bar = tqdm(total=self.steps_per_epoch, initial=start, desc=f"epoch {epoch + 1}/{cfg.schedule.epochs}",
                   disable=not (cfg.train.progress and self.dist.main), dynamic_ncols=True, leave=False)
        epoch_start = tick = time.perf_counter()
        images = 0
        for b, (x, y, idx) in enumerate(loader, start):
            self.last_lr = lr = self.optimizer.param_groups[0]["lr"]
            flip = flips[idx]
            x[flip] = x[flip].flip(-1)  # the authors' RandomFlip, after resize
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            if cfg.train.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            weight = self.batches.weight(b)
            with self.autocast():
                branches = self.forward(x)
                loss = self.loss_fn({k: v.float() for k, v in branches.items()}, y)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss * weight).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            state.step += 1
            n_global = len(self.batches.batch(b))
            loss_sum, bad = self.dist.sum([loss.item() * weight * n_global / self.dist.world,
                                           float(not torch.isfinite(loss))])
            if bad:
                raise FloatingPointError(f"non-finite training loss at epoch {epoch + 1}, step {state.step} "
                                         f"(lr {lr:.3g}); the last good state is in {self.run_dir / 'checkpoints'}")
            state.epoch_loss = [state.epoch_loss[0] + loss_sum, state.epoch_loss[1] + n_global]
            images += n_global
            bar.update(1)
            rate = images / max(time.perf_counter() - tick, 1e-9)
            bar.set_postfix(loss=f"{loss_sum / n_global:.4f}", lr=f"{lr:.2e}", img_s=f"{rate:.1f}")
            if cfg.train.checkpoint_every and state.step % cfg.train.checkpoint_every == 0:
                state.train_seconds += time.perf_counter() - tick
                state.train_images += images
                tick, images = time.perf_counter(), 0
                self.save()
        bar.close()
        state.train_seconds += time.perf_counter() - tick
        state.train_images += images
        return time.perf_counter() - epoch_start

    def evaluate(self, split: str, loader: DataLoader | None = None) -> dict[str, np.ndarray]:
        loader = loader or self.eval_loader(split)
        self.dist.broadcast_buffers(self.model)  # every rank predicts with the saved (rank 0) BN statistics
        return predict(self.model, loader, len(self.splits[split]), self.device, self.dist, self.autocast,
                       self.cfg.train.channels_last)

    def fit(self) -> dict:
        cfg, state = self.cfg, self.state
        if self.dist.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.run_dir / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
            save_split_files(self.splits, self.run_dir)
            self.write_manifest(status="running")
        train_loader, val_loader = self.loaders()
        while state.epochs_done < cfg.schedule.epochs:
            epoch = state.epochs_done
            seconds = self.train_epoch(train_loader, epoch)
            outputs = self.evaluate("val", val_loader)
            val = split_metrics(self.splits["val"].labels, sigmoid(outputs["fused"]), cfg.eval.single_class,
                                cfg.eval.threshold)
            row = {"epoch": epoch + 1, "step": state.step, "lr": self.last_lr,
                   "train_loss": state.epoch_loss[0] / max(state.epoch_loss[1], 1),
                   **{f"val_{k}": val[k] for k in METRIC_COLUMNS}, "epoch_seconds": seconds}
            state.history.append(row)
            state.epoch_loss = [0.0, 0.0]
            state.epochs_done += 1
            best = val["mAUC"] > state.best_val_mauc  # NaN (no scorable class) never counts as better
            if best:
                state.best_val_mauc, state.best_epoch = val["mAUC"], epoch + 1
            if self.dist.main:
                self.write_history()  # before the checkpoint, so a kill in between cannot lose a row
            self.save(best=best)
            if self.dist.main:
                print(f"epoch {epoch + 1}/{cfg.schedule.epochs}  loss {row['train_loss']:.4f}  "
                      f"val mAUC {val['mAUC']:.2f}  mAP {val['mAP']:.2f}" + ("  (best)" if best else ""), flush=True)
        metrics = self.final_evaluation()
        state.finished = True
        self.save()
        if self.dist.main:
            self.write_manifest(status="finished", metrics=metrics)
        return metrics

    def final_evaluation(self) -> dict:
        """Val and test of the best and of the last checkpoint: predictions, metrics, tuned thresholds, CIs.

        Thresholds are tuned per class on validation (max F1) and applied to test; the paper's tables
        use 0.5. Which checkpoint the authors reported is unknown (spec §7.10), so both are kept.
        """
        cfg, metrics = self.cfg, {"selection": "best = highest validation mean AUC; last = final epoch"}
        best_path = self.run_dir / "checkpoints" / "best.pt"
        last_weights = {k: v.clone() for k, v in self.model.state_dict().items()}
        for which in ("best", "last"):
            if which == "best":
                if not best_path.is_file():  # no epoch had a finite validation AUC
                    continue
                self.model.load_state_dict(ckpt_io.load_checkpoint(best_path)["model"])
            else:
                self.model.load_state_dict(last_weights)
            entry = {"epoch": self.state.best_epoch if which == "best" else self.state.epochs_done}
            tuned = None
            for split in ("val", "test"):
                outputs = self.evaluate(split)
                records = self.splits[split]
                probs = sigmoid(outputs["fused"])
                if split == "val":
                    tuned = tune_thresholds(records.labels, probs)
                    entry["tuned_thresholds"] = dict(zip(self.classes, tuned.tolist()))
                entry[split] = split_metrics(records.labels, probs, cfg.eval.single_class, cfg.eval.threshold,
                                             tuned, cfg.eval.n_boot, seed=cfg.train.seed)
                if self.dist.main:
                    suffix = "" if which == "best" else "_last"
                    write_predictions(predictions_frame(records, outputs),
                                      self.run_dir / f"predictions_{split}{suffix}.csv")
            metrics[which] = entry
        if self.dist.main:
            write_json(self.run_dir / "metrics.json", metrics)
        return metrics

    # ---- reports

    def write_history(self) -> None:
        write_json(self.run_dir / "history.json", self.state.history)
        frame = pd.DataFrame(self.state.history)
        with atomic_path(self.run_dir / "history.csv") as tmp:
            frame.to_csv(tmp, index=False, float_format="%.6g")

    def write_manifest(self, status: str, metrics: dict | None = None) -> None:
        s = self.state
        summary = None
        if metrics:
            summary = {which: {split: {k: metrics[which][split][k] for k in METRIC_COLUMNS}
                               for split in ("val", "test")} | {"epoch": metrics[which]["epoch"]}
                       for which in ("best", "last") if which in metrics}
        manifest = {
            "status": status,
            "git_commit": git_commit(),
            "config": to_dict(self.cfg),
            "config_hash": config_hash(self.cfg),
            "profile": self.cfg.profile,
            "model": self.model_name,
            "classes": list(self.classes),
            "dataset": {"name": self.cfg.data.dataset, "split": self.cfg.data.split,
                        "sizes": {k: len(v) for k, v in self.splits.items()},
                        "hash": dataset_hash(self.hashes)},
            "split_hashes": self.hashes,
            "seed": self.cfg.train.seed,
            "packages": package_versions(),
            "device": describe_device(self.device, self.dist),
            "steps": s.step,
            "epochs_done": s.epochs_done,
            "wall_time_s": round(s.train_seconds, 3),  # training steps only
            "total_wall_time_s": round(s.wall_seconds, 3),  # with evaluation and checkpoints
            "images_per_s": round(s.train_images / s.train_seconds, 2) if s.train_seconds else None,
            "best_epoch": s.best_epoch,
            "best_val_mAUC": s.best_val_mauc if math.isfinite(s.best_val_mauc) else None,
            "final_metrics": summary,
        }
        write_json(self.run_dir / "manifest.json", manifest)


# ---------------------------------------------------------------- entry points


def train(cfg: RunConfig) -> tuple[Path, dict]:
    """Train a new run; refuses to overwrite a run folder that already holds a checkpoint."""
    run_dir = run_dir_for(cfg)
    if (run_dir / "checkpoints" / "last.pt").exists():
        raise ConfigError(f"{run_dir} already holds a run; continue it with --resume {run_dir} "
                          "or choose another train.run_name")
    trainer = Trainer(cfg, run_dir)
    try:
        return run_dir, trainer.fit()
    finally:
        shutdown(trainer.dist)


def resume(run_dir: str | Path, overrides: dict | None = None) -> tuple[Path, dict]:
    """Continue a run from its last checkpoint (or from its start if it was killed before the first one).

    Only settings that cannot change the numbers (UNHASHED: paths, workers, progress bar) may be
    overridden, e.g. data.root when the data moved."""
    run_dir = Path(run_dir)
    bad = sorted(set(overrides or {}) - set(UNHASHED))
    if bad:
        raise ConfigError(f"--resume may change only {', '.join(UNHASHED)}; not {', '.join(bad)}")
    last = run_dir / "checkpoints" / "last.pt"
    if last.exists():
        ckpt = ckpt_io.load_checkpoint(last)
        cfg = from_dict(ckpt["config"], source=str(last))
    elif (run_dir / "config.yaml").exists():
        config_file = run_dir / "config.yaml"
        ckpt, cfg = None, from_dict(yaml.safe_load(config_file.read_text(encoding="utf-8")), source=str(config_file))
    else:
        raise FileNotFoundError(f"{run_dir}: no checkpoints/last.pt or config.yaml to resume from")
    for key, value in (overrides or {}).items():
        set_key(cfg, key, value, "--set")
    # The run folder is where it is now, whatever out_dir/run_name said when it started.
    cfg.train.out_dir, cfg.train.run_name = str(run_dir.parent), run_dir.name
    if ckpt is not None and ckpt["state"]["finished"]:
        print(f"{run_dir}: run already finished")
        return run_dir, json.loads((run_dir / "metrics.json").read_text())
    trainer = Trainer(cfg, run_dir, resume=ckpt)
    try:
        return run_dir, trainer.fit()
    finally:
        shutdown(trainer.dist)

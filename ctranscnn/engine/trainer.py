"""The training loop: the authors' recipe, exact mid-epoch resume, DDP, best/last checkpoints.

Owns `Trainer` (one run: steps, validation, checkpoints, the final evaluation) and the entry points `train`
and `resume`. What a run needs before its first step comes from engine.setup; every file it writes goes
through the RunDir it holds (engine.rundir, which also documents the folder's layout).
"""
from __future__ import annotations

import math
import os
import shutil
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import yaml
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from ctranscnn.bench import capture
from ctranscnn.data.dataset import ImageDataset, build_loader
from ctranscnn.engine import checkpoint as ckpt_io
from ctranscnn.engine.config import UNHASHED, ConfigError, RunConfig, config_hash, from_dict, set_key, to_dict
from ctranscnn.engine.distributed import init_distributed, shutdown
from ctranscnn.engine.evaluation import predict, predictions_frame, sigmoid, split_metrics
from ctranscnn.engine.optim import build_optimizer, build_scheduler, current_lr
from ctranscnn.engine.rundir import CHECKPOINTS, FAILED, FINISHED, INTERRUPTED, RUNNING, SPLITS, RunDir
from ctranscnn.engine.runlock import RunLock, check_writable
from ctranscnn.engine.sampling import EpochBatches, flip_mask
from ctranscnn.engine.setup import (autocast_for, build_model, describe_device, load_data, loader_workers,
                                    preprocess_for, seed_everything, select_device, split_hashes)
from ctranscnn.losses import build_loss
from ctranscnn.metrics import METRIC_COLUMNS, tune_thresholds


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


class Branches(nn.Module):
    """forward(x) -> branch logits dict: the training forward, as one module for DDP and torch.compile."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model.forward_head(self.model.forward_features(x))


# ---------------------------------------------------------------- the run


class Trainer:
    def __init__(self, cfg: RunConfig, run: RunDir, resume: dict | None = None):
        self.cfg, self.run = cfg, run
        seed_everything(cfg.train.seed, cfg.train.deterministic)  # before CUDA starts (CUBLAS_WORKSPACE_CONFIG)
        self.device = select_device(cfg, int(os.environ.get("LOCAL_RANK", "0")))
        if cfg.train.cuda_graph and self.device.type != "cuda":
            raise ConfigError("train.cuda_graph needs CUDA (no CUDA device is used)")
        self.dist = init_distributed(self.device)
        if cfg.train.batch_size < self.dist.world:
            raise ConfigError(f"train.batch_size {cfg.train.batch_size} is smaller than the {self.dist.world} ranks")
        if cfg.train.cuda_graph and self.dist.enabled:
            raise ConfigError("train.cuda_graph runs in one process only (not under DDP)")
        if cfg.train.cpu_threads:
            torch.set_num_threads(cfg.train.cpu_threads)
        self.splits = load_data(cfg)
        self.classes = self.splits["train"].classes
        self.hashes = split_hashes(cfg)
        self.preprocess = preprocess_for(cfg)
        self.model, self.model_name = build_model(cfg, len(self.classes))
        if cfg.train.sync_bn and self.dist.enabled:
            if self.device.type != "cuda":
                raise ConfigError("train.sync_bn needs CUDA (SyncBatchNorm has no CPU kernel)")
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.model.to(self.device)
        if cfg.train.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.optimizer = build_optimizer(self.model, cfg.optim, capturable=cfg.train.cuda_graph)
        self.batches = EpochBatches(len(self.splits["train"]), cfg.train.batch_size, cfg.train.seed,
                                    self.dist.rank, self.dist.world)
        self.steps_per_epoch = self.batches.num_batches
        self.total_steps = self.steps_per_epoch * cfg.schedule.epochs
        self.scheduler = build_scheduler(self.optimizer, self.total_steps, cfg.schedule)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.train.amp == "fp16")
        self.autocast = autocast_for(cfg, self.device)
        self.graph = None  # (static x, static y, {'loss': static loss}, replay) once captured (train.cuda_graph)
        self.workers: int | None = None  # data.num_workers resolved (loader_workers)
        self.on_sync: Callable[[int, float], None] | None = None  # called (step, mean loss since last read)
        self.loss_fn = build_loss(cfg.loss)
        self.state = TrainState()
        self._mark = time.perf_counter()  # wall-clock accounting (see save)
        self.last_lr = float("nan")  # learning rate of the latest step, for the history
        # (epoch, split) -> the predictions of that epoch's weights, for final_evaluation (the latest epoch's val)
        self.epoch_outputs: dict[tuple[int, str], dict[str, np.ndarray]] = {}
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
            self.run.save_checkpoint(payload, best)
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
        if self.cfg.train.cuda_graph:  # capturable AdamW: each group's rate a tensor on the device
            for group in self.optimizer.param_groups:
                group["lr"] = torch.tensor(float(group["lr"]), device=self.device)
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
        workers = self.num_workers(train_set)
        train = DataLoader(train_set, batch_sampler=self.batches, num_workers=workers,
                           persistent_workers=workers > 0, pin_memory=self.device.type == "cuda",
                           generator=torch.Generator().manual_seed(self.cfg.train.seed))
        return train, self.eval_loader("val")

    def eval_loader(self, split: str) -> DataLoader:
        d = self.cfg.data
        dataset = ImageDataset(self.splits[split], self.preprocess, train=False,
                               cache_dir=Path(d.cache_dir) if d.cache_dir else None)
        return build_loader(dataset, self.cfg.eval.batch_size, shuffle=False, seed=self.cfg.train.seed,
                            num_workers=self.num_workers(dataset), distributed=self.dist.enabled)

    def num_workers(self, dataset: ImageDataset) -> int:
        """data.num_workers, 'auto' resolved once per run on the first dataset asked for (the training split)."""
        if self.workers is None:
            self.workers = loader_workers(self.cfg, self.device, dataset)
        return self.workers

    # ---- one optimizer step

    def step(self, x: torch.Tensor, y: torch.Tensor, weight: float) -> torch.Tensor:
        """One optimizer step and scheduler step on the batch (x, y) (still on the host); returns the batch's loss,
        on the device and not yet read."""
        cfg = self.cfg.train
        if cfg.cuda_graph and len(x) == cfg.batch_size:
            return self.graph_step(x, y)
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with self.autocast():
            branches = self.forward(x)
            loss = self.loss_fn({k: v.float() for k, v in branches.items()}, y)
        # Under cuda_graph the gradients are the graph's static buffers: zeroed in place, never dropped.
        self.optimizer.zero_grad(set_to_none=not cfg.cuda_graph)
        self.scaler.scale(loss * weight).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return loss.detach()

    def graph_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The step of a full batch as a replay of the captured graph (captured on the first full batch). Single
        process, so the batch weight is 1; the scheduler fills the optimizer's lr tensors for the next replay."""
        if self.graph is None:
            self.graph = self.capture_step(x, y)
            self.graph_lrs = [group["lr"] for group in self.optimizer.param_groups]  # the tensors the graph reads
        static_x, static_y, out, replay = self.graph
        static_x.copy_(x, non_blocking=True)
        static_y.copy_(y, non_blocking=True)
        replay()
        self.scheduler.step()
        for group, lr in zip(self.optimizer.param_groups, self.graph_lrs):
            if group["lr"] is not lr:  # a torch whose scheduler assigns a float instead of filling the tensor
                lr.fill_(float(group["lr"]))
                group["lr"] = lr
        return out["loss"].clone()  # the captured loss tensor, which the next replay overwrites

    def capture_step(self, x: torch.Tensor, y: torch.Tensor):
        """Capture the training step with ctranscnn.bench.capture. Its three warm-up steps update the weights, so
        the model, its buffers, the optimizer state and the CUDA RNG are put back afterwards: the run's first
        step is the first replay, as in eager training."""
        fmt = torch.channels_last if self.cfg.train.channels_last else torch.contiguous_format
        static_x = torch.empty(x.shape, dtype=x.dtype, device=self.device, memory_format=fmt)
        static_x.copy_(x)
        static_y = y.to(self.device).clone()
        autocast, out = autocast_for(self.cfg, self.device, cache=False), {}

        def step() -> None:
            self.optimizer.zero_grad(set_to_none=False)
            with autocast():
                branches = self.forward(static_x)
                loss = self.loss_fn({k: v.float() for k, v in branches.items()}, static_y)
            loss.backward()
            self.optimizer.step()
            out["loss"] = loss.detach()

        tensors = {**dict(self.model.named_parameters()), **dict(self.model.named_buffers())}
        saved = {k: v.detach().clone() for k, v in tensors.items()}
        saved_opt = {p: {k: v.clone() for k, v in st.items() if torch.is_tensor(v)}
                     for p, st in self.optimizer.state.items()}
        rng = torch.cuda.get_rng_state(self.device)
        replay = capture(step, self.device)
        with torch.no_grad():
            for k, v in tensors.items():
                v.copy_(saved[k])
            for p, st in self.optimizer.state.items():
                for k, v in st.items():
                    if k in saved_opt.get(p, {}):
                        v.copy_(saved_opt[p][k])
                    elif torch.is_tensor(v):  # a state the warm-ups created is a fresh one: zeros (step 0)
                        v.zero_()
        torch.cuda.set_rng_state(rng, self.device)
        return static_x, static_y, out, replay

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
        # Since the last read (train.sync_every): weighted loss sum and count of non-finite losses, on the device
        # in float64 (read after every step, the sums equal those of Python floats), and the images.
        pending = torch.zeros(2, dtype=torch.float64, device=self.device)
        first, pending_images = state.step + 1, 0
        for b, (x, y, idx) in enumerate(loader, start):
            self.last_lr = lr = current_lr(self.scheduler)
            flip = flips[idx]
            x[flip] = x[flip].flip(-1)  # the authors' RandomFlip, after resize
            weight = self.batches.weight(b)
            loss = self.step(x, y, weight)
            state.step += 1
            n_global = len(self.batches.batch(b))
            pending += torch.stack([loss.double() * weight * n_global / self.dist.world,
                                    (~torch.isfinite(loss)).double()])
            images += n_global
            pending_images += n_global
            bar.update(1)
            checkpoint = bool(cfg.train.checkpoint_every and state.step % cfg.train.checkpoint_every == 0)
            if not (checkpoint or b == self.steps_per_epoch - 1 or state.step - first + 1 >= cfg.train.sync_every):
                continue
            loss_sum, bad = self.dist.sum(pending.tolist())  # the host waits for the device here only
            if bad:
                steps = f"step {state.step}" if first == state.step else f"steps {first}-{state.step}"
                raise FloatingPointError(f"non-finite training loss at epoch {epoch + 1}, {steps} "
                                         f"(lr {lr:.3g}); the last good state is in {self.run.checkpoint_dir}")
            state.epoch_loss = [state.epoch_loss[0] + loss_sum, state.epoch_loss[1] + pending_images]
            rate = images / max(time.perf_counter() - tick, 1e-9)
            bar.set_postfix(loss=f"{loss_sum / pending_images:.4f}", lr=f"{lr:.2e}", img_s=f"{rate:.1f}")
            if self.on_sync is not None:
                self.on_sync(state.step, loss_sum / pending_images)
            pending.zero_()
            first, pending_images = state.step + 1, 0
            if checkpoint:
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
            self.run.start(cfg, self.splits)
            self.write_manifest(RUNNING)
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
            self.epoch_outputs = {(state.epochs_done, "val"): outputs}
            best = val["mAUC"] > state.best_val_mauc  # NaN (no scorable class) never counts as better
            if best:
                state.best_val_mauc, state.best_epoch = val["mAUC"], epoch + 1
            if self.dist.main:
                self.run.write_history(state.history)  # before the checkpoint, so a kill in between cannot lose a row
            self.save(best=best)
            if self.dist.main:
                print(f"epoch {epoch + 1}/{cfg.schedule.epochs}  loss {row['train_loss']:.4f}  "
                      f"val mAUC {val['mAUC']:.2f}  mAP {val['mAP']:.2f}" + ("  (best)" if best else ""), flush=True)
        metrics = self.final_evaluation()
        state.finished = True
        self.save()
        if self.dist.main:
            self.write_manifest(FINISHED, metrics)
        return metrics

    def final_evaluation(self) -> dict:
        """Val and test of the best and of the last checkpoint: predictions, metrics, tuned thresholds, CIs.

        Thresholds are tuned per class on validation (max F1) and applied to test; the paper's tables
        use 0.5. Which checkpoint the authors reported is unknown (spec §7.10), so both are kept.
        """
        cfg, metrics = self.cfg, {"selection": "best = highest validation mean AUC; last = final epoch"}
        last_weights = {k: v.clone() for k, v in self.model.state_dict().items()}
        # Predictions depend on the weights only: the final epoch's validation pass, and the best checkpoint's
        # passes when it is the final epoch's, are reused (the same arrays), not computed again.
        seen = dict(self.epoch_outputs)
        for which in CHECKPOINTS:
            if which == "best":
                if not self.run.has_checkpoint("best"):  # no epoch had a finite validation AUC
                    continue
                if self.state.best_epoch != self.state.epochs_done:  # else best.pt holds the weights in memory
                    self.model.load_state_dict(ckpt_io.load_checkpoint(self.run.checkpoint_file("best"))["model"])
            else:
                self.model.load_state_dict(last_weights)
            entry = {"epoch": self.state.best_epoch if which == "best" else self.state.epochs_done}
            tuned = None
            for split in SPLITS:
                if (entry["epoch"], split) not in seen:
                    seen[entry["epoch"], split] = self.evaluate(split)
                outputs = seen[entry["epoch"], split]
                records = self.splits[split]
                probs = sigmoid(outputs["fused"])
                if split == "val":
                    tuned = tune_thresholds(records.labels, probs)
                    entry["tuned_thresholds"] = dict(zip(self.classes, tuned.tolist()))
                entry[split] = split_metrics(records.labels, probs, cfg.eval.single_class, cfg.eval.threshold,
                                             tuned, cfg.eval.n_boot, seed=cfg.train.seed, classes=records.classes)
                if self.dist.main:
                    self.run.write_predictions(predictions_frame(records, outputs), split, which)
            metrics[which] = entry
        if self.dist.main:
            self.run.write_metrics(metrics)
        return metrics

    def write_manifest(self, status: str, metrics: dict | None = None, error: str | None = None) -> None:
        self.run.write_manifest(status, self.cfg, self.model_name, self.classes, self.splits, self.hashes,
                                describe_device(self.device, self.dist), self.state, metrics, error)

    def record_failure(self, err: BaseException) -> None:
        """Mark a started run 'failed' (or 'interrupted' on Ctrl-C) with the error, so its manifest does not say
        'running' forever. Best effort: the original error matters more than a failure to record it."""
        if not (self.dist.main and self.run.manifest_file.is_file()):
            return
        status = INTERRUPTED if isinstance(err, KeyboardInterrupt) else FAILED
        try:
            self.write_manifest(status, error=f"{type(err).__name__}: {err}".strip().rstrip(":"))
        except Exception:  # noqa: BLE001 - e.g. the disk that failed the run is full
            pass


# ---------------------------------------------------------------- entry points


def _exclusive(run: RunDir, what: str):
    """Rank 0 proves the folder writable and holds its lock for the whole training; the other ranks of a DDP
    run work under rank 0's lock."""
    if int(os.environ.get("RANK", "0")) != 0:
        return nullcontext()
    check_writable(run.path, run.checkpoint_dir)
    return RunLock(run.path, what)


def _fit(trainer: Trainer) -> tuple[Path, dict]:
    """trainer.fit(); a failure it survives to see is recorded in the manifest (status failed/interrupted)."""
    try:
        return trainer.run.path, trainer.fit()
    except BaseException as err:
        trainer.record_failure(err)
        raise
    finally:
        shutdown(trainer.dist)


def train(cfg: RunConfig) -> tuple[Path, dict]:
    """Train a new run; refuses to overwrite a run folder that already holds a checkpoint."""
    run = RunDir.for_config(cfg)
    with _exclusive(run, "train"):
        if run.has_checkpoint("last"):
            raise ConfigError(f"{run.path} already holds a run; continue it with --resume {run.path} "
                              "or choose another train.run_name")
        return _fit(Trainer(cfg, run))


def resume(run_dir: str | Path, overrides: dict | None = None, restart: bool = False) -> tuple[Path, dict]:
    """Continue a run from its last checkpoint, or start it if it never wrote one (a folder prepared by
    `grid`/`plan --json` holds only config.yaml).

    A run that wrote a checkpoint (checkpoints/last.json exists) but whose last.pt is missing or damaged is not
    silently started over: `restart=True` (--restart) trains it again from step 0 with its config.yaml, after
    moving the old checkpoints to checkpoints.before-restart/. Only settings that cannot change the numbers
    (UNHASHED: paths, workers, progress bar) may be overridden, e.g. data.root when the data moved."""
    run = RunDir(run_dir)
    bad = sorted(set(overrides or {}) - set(UNHASHED))
    if bad:
        raise ConfigError(f"--resume may change only {', '.join(UNHASHED)}; not {', '.join(bad)}")
    if not run.has_checkpoint("last") and not run.config_file.exists():
        raise FileNotFoundError(f"{run.path}: no checkpoints/last.pt or config.yaml to resume from")
    with _exclusive(run, "resume"):
        ckpt = None
        if not restart:
            if run.has_checkpoint("last"):
                ckpt = ckpt_io.load_checkpoint(run.checkpoint_file("last"))  # not RunDir.checkpoint: no cached copy
            elif run.checkpoint_file("last").with_suffix(".json").exists():
                raise ConfigError(f"{run.checkpoint_file('last')} is missing, but the run had saved it (last.json "
                                  "is there): resuming would start over from step 0. Restore the file, or train the "
                                  f"run again from step 0 with --resume {run.path} --restart")
        elif run.checkpoint_dir.exists():
            aside = run.path / "checkpoints.before-restart"
            shutil.rmtree(aside, ignore_errors=True)
            run.checkpoint_dir.rename(aside)
            check_writable(run.checkpoint_dir)
            print(f"{run.path}: --restart: training again from step 0; the old checkpoints are in {aside}")
        if ckpt is not None:
            cfg = from_dict(ckpt["config"], source=str(run.checkpoint_file("last")))
        else:
            cfg = from_dict(yaml.safe_load(run.config_file.read_text(encoding="utf-8")), str(run.config_file))
        for key, value in (overrides or {}).items():
            set_key(cfg, key, value, "--set")
        # The run folder is where it is now, whatever out_dir/run_name said when it started.
        cfg.train.out_dir, cfg.train.run_name = str(run.path.parent), run.path.name
        if ckpt is not None and ckpt["state"]["finished"]:
            print(f"{run.path}: run already finished")
            return run.path, run.metrics
        return _fit(Trainer(cfg, run, resume=ckpt))

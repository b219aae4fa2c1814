"""Training order and flips as pure functions of (seed, epoch), so a run resumes mid-epoch exactly.

The order of epoch e is a seeded permutation; global batch b is its slice [b*B, (b+1)*B) (the last one
smaller: the authors' drop_last=False) and DDP rank r takes the r-th of `world` near-equal parts of it.
A resumed run skips the batches it already consumed. The horizontal flip of image i in epoch e is drawn
from (seed, epoch) too, not from a worker's RNG, so it does not depend on workers, ranks or restarts.
"""
from __future__ import annotations

import math

import numpy as np
from torch.utils.data import Sampler

FLIP_STREAM = 1  # separates the flip draws from the order draws of the same (seed, epoch)


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


def flip_mask(n: int, seed: int, epoch: int, p: float = 0.5) -> np.ndarray:
    """bool per image index: flip it horizontally in this epoch."""
    return np.random.default_rng([seed, epoch, FLIP_STREAM]).random(n) < p


def shard(batch: np.ndarray, world: int, rank: int) -> np.ndarray:
    return np.array_split(batch, world)[rank]


class EpochBatches(Sampler[list[int]]):
    """Batch sampler of one rank: the batches of epoch `epoch` from batch `start` on (see set_epoch).

    A rank whose share of a short last batch is empty gets the batch's first image with `weight` 0,
    so every rank runs the same number of steps (DDP needs that) and the gradient is unchanged.
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.set_epoch(0)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start
        self.order = epoch_order(self.n, self.seed, epoch)

    def __len__(self) -> int:
        return max(self.num_batches - self.start, 0)

    @property
    def num_batches(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def batch(self, b: int) -> np.ndarray:
        """Image indices of global batch b of the current epoch."""
        return self.order[b * self.batch_size:(b + 1) * self.batch_size]

    def weight(self, b: int) -> float:
        """Loss multiplier of this rank's part of batch b: local size x world / global size.

        DDP averages gradients over ranks; with this weight the average equals the gradient of the
        loss over the whole global batch, however unevenly it is split."""
        full = self.batch(b)
        return len(shard(full, self.world, self.rank)) * self.world / len(full)

    def __iter__(self):
        for b in range(self.start, self.num_batches):
            full = self.batch(b)
            part = shard(full, self.world, self.rank)
            yield (part if len(part) else full[:1]).tolist()

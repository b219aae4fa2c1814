"""torch Dataset over a split: (image float32 3 x H x W normalised, target float32 C, index)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ctranscnn.data.cache import build_cache
from ctranscnn.data.records import LabelledImages
from ctranscnn.data.transforms import PreprocessConfig, decode, normalize


class ImageDataset(Dataset):
    """Images of one split, decoded once into the cache when `cache_dir` is given, else on every access.

    The training flip is drawn from torch's RNG, which DataLoader seeds per worker from its generator,
    so a seeded loader (see build_loader) gives the same flips on every run.
    """

    def __init__(
        self,
        records: LabelledImages,
        preprocess: PreprocessConfig,
        train: bool,
        cache_dir: Path | None = None,
        workers: int | None = None,
    ):
        self.records, self.cfg, self.train = records, preprocess, train
        self.targets = torch.from_numpy(records.labels.astype(np.float32))
        self.cache_file = None if cache_dir is None else build_cache(records, preprocess, Path(cache_dir), workers)
        self._pixels: np.ndarray | None = None  # opened lazily in each worker process

    def __len__(self) -> int:
        return len(self.records)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_pixels": None}  # never pickle the memory map's contents

    def image(self, i: int) -> np.ndarray:
        """uint8 H x W x C of image i (C = 1 or 3), from the cache or decoded now."""
        if self.cache_file is not None:
            if self._pixels is None:
                self._pixels = np.load(self.cache_file, mmap_mode="r")
            return self._pixels[i]
        source = self.records.pixels[i] if self.records.pixels is not None else self.records.paths[i]
        return decode(source, self.cfg)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        flip = self.train and self.cfg.flip_p > 0 and bool(torch.rand(()) < self.cfg.flip_p)
        return normalize(self.image(i), self.cfg, flip), self.targets[i], i


def collate(batch: list[tuple[torch.Tensor, torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack a batch in numpy: torch.stack in the main process waits on its thread pool, which
    costs more than the copy itself when the CPU is shared (measured 40x slower on 2 busy cores)."""
    images = np.stack([b[0].numpy() for b in batch])
    targets = np.stack([b[1].numpy() for b in batch])
    return torch.from_numpy(images), torch.from_numpy(targets), torch.tensor([b[2] for b in batch])


def build_loader(
    dataset: ImageDataset,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    num_workers: int = 0,
    drop_last: bool = False,
    distributed: bool = False,
) -> DataLoader:
    """A seeded DataLoader (same order and flips on every run); `distributed` shards it with a
    DistributedSampler (call `loader.sampler.set_epoch(epoch)` each epoch)."""
    generator = torch.Generator().manual_seed(seed)
    sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last) if distributed else None
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=drop_last,
        collate_fn=collate,
        generator=generator,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=num_workers > 0,
    )

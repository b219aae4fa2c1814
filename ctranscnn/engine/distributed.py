"""Process group for `torchrun` (DDP): NCCL on GPU, gloo on CPU; a no-op in a plain single process."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")  # where collectives run (NCCL needs CUDA tensors)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def gather(self, obj: Any) -> list[Any]:
        """`obj` of every rank, in rank order (a one-element list without DDP)."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def broadcast_buffers(self, module: torch.nn.Module) -> None:
        """Rank 0's buffers (BatchNorm running statistics) on every rank, before an evaluation.

        DDP syncs buffers only at the start of each training forward, so after a step every rank holds
        statistics updated by its own share of the batch. Evaluating with rank 0's, the ones the checkpoint
        saves, makes every rank's predictions those of the saved model (mmcv's DistEvalHook does the same:
        broadcast_bn_buffer=True)."""
        if self.enabled:
            for buffer in module.buffers():
                dist.broadcast(buffer.data, src=0)

    def sum(self, values: list[float]) -> list[float]:
        if not self.enabled:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()


def init_distributed(device: torch.device) -> Dist:
    """Join the torchrun process group when WORLD_SIZE > 1 (env://); otherwise a single process.
    `device` is this rank's device (call torch.cuda.set_device first on GPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), device)


def shutdown(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()

"""Data-parallel training without Ray: which worker this is and the collectives a step needs.

A trial with ``resources.workers: N`` runs N copies of ``train_trial`` in one
``torch.distributed`` process group (the runner starts them with Ray Train; gloo on CPU, NCCL
on GPU). Every worker draws the whole global batch from the same generator and keeps its slice
(``shard``), so N workers x B/N samples are exactly 1 worker x B; gradients are averaged, and
per-sample diagnostics gathered, so the history is the global batch's. Rank 0 owns the trial
folder (history, checkpoints, evaluation); the others resume from what it broadcasts.
Without a process group, ``World()`` is one worker and every method is the identity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    """This worker's rank among ``size`` data-parallel workers."""

    rank: int = 0
    size: int = 1

    @classmethod
    def current(cls) -> World:
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    @property
    def main(self) -> bool:
        """Rank 0: the worker that writes the trial folder and evaluates."""
        return self.rank == 0

    def check_batch(self, batch_size: int, where: str) -> None:
        if batch_size % self.size:
            raise ValueError(
                f"{where}: {batch_size} does not split between {self.size} workers; use a "
                "multiple of resources.workers"
            )

    def shard(self, x: torch.Tensor) -> torch.Tensor:
        """This worker's slice of a global batch: (B, ...) -> (B / size, ...)."""
        n = x.shape[0] // self.size
        return x[self.rank * n : (self.rank + 1) * n]

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """The per-sample tensors of all workers in rank order: (b, ...) -> (b * size, ...)."""
        if self.size == 1:
            return x
        parts = [torch.empty_like(x) for _ in range(self.size)]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    def average_gradients(self, params: list[torch.nn.Parameter]) -> None:
        """grad <- mean over workers of grad, so each step follows the global batch's mean loss
        (each worker's loss is the mean over its equal-sized slice)."""
        grads = [p.grad for p in params if p.grad is not None]
        if self.size == 1 or not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])  # (total parameters,)
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= self.size
        for g, new in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
            g.copy_(new.view_as(g))

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every worker (e.g. the checkpoint it resumes from)."""
        if self.size == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

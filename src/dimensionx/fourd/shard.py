"""``scene4d --gpus N``: the grid's videos shared over N processes, one GPU each, under torchrun.

The grid stage denoises videos in groups (``batch`` of one shape at a time): the rows, then the
refinement passes over the views and over the times. Each process takes every N-th group of a
step and the results are all-gathered, so every process holds the whole grid before the next step
(a refinement pass reads what the one before wrote). The groups are those of a one-process run and
each group's noise is seeded by the group alone, so the grid is the one-process grid. The first
process (rank 0) alone writes files: it makes the folder and the T-Director video, keeps the grid's
progress, writes the grid, then fits and renders alone; the others leave after the grid.

torchrun starts the processes (``--standalone`` on this machine); the same command under
``torchrun --nnodes ...`` joins processes on other machines, which must see the scene folder.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from ..errors import DimensionXError


class Shard:
    """This process's share of the grid: ``rank`` of ``world`` processes (0 of 1 without torchrun)."""

    def __init__(self, rank: int = 0, world: int = 1, device: torch.device | None = None):
        self.rank, self.world, self.device = rank, world, device

    @classmethod
    def join(cls, device: str) -> Shard:
        """Joins torchrun's process group if this process runs under it (gloo on CPU, NCCL on CUDA)."""
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:  # as video.parallel.is_distributed, without importing diffusers
            return cls()
        import torch.distributed as dist

        from ..video.parallel import init_process

        local = init_process(device)
        return cls(dist.get_rank(), dist.get_world_size(), local)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def mine(self, groups: list[list[int]]) -> list[list[int]]:
        """Every ``world``-th group, starting at ``rank``."""
        return groups[self.rank::self.world]

    def gather(self, videos: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
        """{index: [T, H, W, 3] uint8} of this process -> those of every process."""
        if self.world == 1:
            return videos
        import torch.distributed as dist

        parts: list[dict[int, np.ndarray] | None] = [None] * self.world
        dist.all_gather_object(parts, videos)
        return {k: v for part in parts for k, v in part.items()}

    def barrier(self) -> None:
        """Waits for every process (the first one writes what the others then read)."""
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()


NO_SHARD = Shard()


def launch(argv: list[str], processes: int) -> int:
    """Runs ``dimensionx`` with ``argv`` under torchrun, ``processes`` processes on this machine."""
    if processes < 1:
        raise DimensionXError(f"--gpus {processes}: 1 or more processes, one GPU each")
    from ..video.parallel import torchrun

    return torchrun(argv, processes)

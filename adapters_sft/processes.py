"""Which process this is, when a run is spread over several (torchrun, `accelerate launch`, or
`adapters-sft train --nproc N`, which re-runs itself under torch.distributed.run).

Every process trains (the Trainer and accelerate do the data parallelism: each process takes
its share of every global batch, gradients are averaged). Only the main process (rank 0)
writes: the run directory, metrics, evaluations, the trained artifact, and the final rename
of the staging folder; only it prints. The others train and score exactly as it does, so a
collective step (an evaluation through the Trainer) never waits for a process that skipped it.

This module reads the launcher's environment and imports nothing of ours, so every layer (the
data handoff, model loading) may ask it; launch.py starts the processes, sharding.py owns the
recipe's `distributed:` section.
"""
from __future__ import annotations

import os
from typing import Any, Callable


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    """This process's device index on its machine (CUDA: its GPU)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def main_only(echo: Callable[[str], Any]) -> Callable[[str], Any]:
    """`echo` on the main process, silence elsewhere: one copy of every line."""
    return echo if is_main() else (lambda line: None)


def launched() -> bool:
    """Whether a launcher (torchrun, accelerate, `train --nproc`) started this process."""
    return "LOCAL_RANK" in os.environ


def barrier() -> None:
    """Wait for every process (nothing to wait for in a single-process run)."""
    if world_size() > 1:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.barrier()


def all_reduce(values: list[float], op: str = "sum") -> list[float]:
    """`values` summed (or their maximum, op="max") over every process of the run, on the
    device the collective backend needs; unchanged in a single-process run. Every process
    must call it at the same point."""
    if world_size() == 1:
        return list(values)
    import torch
    import torch.distributed as dist

    device = f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu"
    both = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(both, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return both.tolist()

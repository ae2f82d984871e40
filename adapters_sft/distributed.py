"""Which process this is, when a run is spread over several (torchrun, `accelerate launch`, or
`adapters-sft train --nproc N`, which re-runs itself under torch.distributed.run).

Every process trains (the Trainer and accelerate do the data parallelism: each process takes
its share of every global batch, gradients are averaged). Only the main process (rank 0)
writes: the run directory, metrics, evaluations, the trained artifact, and the final rename
of the staging folder; only it prints. The others train and score exactly as it does, so a
collective step (an evaluation through the Trainer) never waits for a process that skipped it.
"""
from __future__ import annotations

import os
import subprocess
import sys
from typing import Any, Callable


# process identity has its own owner (processes.py: imports nothing of ours, so the data
# handoff and model loading can ask it without importing the launcher); re-exported here
from .processes import is_main, local_rank, main_only, rank, world_size  # noqa: E402,F401


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


def launch(nproc: int, argv: list[str], nnodes: int = 1, node_rank: int = 0,
           rdzv_endpoint: str | None = None, prepared: Any = None) -> int:
    """Run `adapters-sft ARGV` in `nproc` processes on this machine (times `nnodes` machines)
    under torch.distributed.run; returns the exit status of the launch. `prepared`: the data
    as the launching command prepared it, handed to the processes (data/handoff.py)."""
    if prepared is None:
        return _launch(nproc, argv, nnodes, node_rank, rdzv_endpoint, {})
    import tempfile
    from pathlib import Path

    from .data import handoff

    with tempfile.TemporaryDirectory(prefix="adapters-sft-prepared-") as folder:
        handoff.save(prepared, Path(folder))
        return _launch(nproc, argv, nnodes, node_rank, rdzv_endpoint, {handoff.ENV: folder})


def check_launch(nproc: int, nnodes: int = 1, node_rank: int = 0) -> None:
    """The launch options, refused in one line before anything starts: a node rank outside
    --nnodes would wait forever for peers that never come; more processes than devices (GPUs,
    or CPU cores on a CPU) would share one and gain nothing."""
    import torch

    from .errors import UserError

    if not 0 <= node_rank < nnodes:
        raise UserError(f"--node-rank {node_rank}: must be below --nnodes {nnodes} (0 to "
                        f"{nnodes - 1}), or the processes wait forever for a machine that is not coming")
    if torch.cuda.is_available():
        have, what = torch.cuda.device_count(), "GPUs"
    else:
        have, what = os.cpu_count() or 1, "CPU cores"
    if nproc > have:
        raise UserError(f"--nproc {nproc}: this machine has {have} {what}, and each process "
                        f"needs one of its own; use --nproc {have} or fewer")


def _launch(nproc: int, argv: list[str], nnodes: int, node_rank: int, rdzv_endpoint: str | None,
            extra_env: dict[str, str]) -> int:
    import signal

    from .errors import UserError

    check_launch(nproc, nnodes, node_rank)
    if nnodes > 1 and not rdzv_endpoint:
        raise UserError("--nnodes: several machines need --rdzv-endpoint HOST:PORT (the first "
                        "machine's address and a free port), the same on every machine")
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}"]
    if nnodes == 1 and rdzv_endpoint is None:
        command.append("--standalone")
    else:
        command += [f"--nnodes={nnodes}", f"--node_rank={node_rank}", "--rdzv_backend=c10d",
                    f"--rdzv_endpoint={rdzv_endpoint}"]
    env = {**os.environ, **extra_env}
    env.setdefault("OMP_NUM_THREADS", "1")  # torchrun's own default, without its warning
    child = subprocess.Popen([*command, "-m", "adapters_sft", *argv], env=env)
    # Ctrl-C reaches the training processes (and torchrun) itself; this one waits for them to
    # checkpoint and end rather than dying first and orphaning them
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return child.wait()
    finally:
        signal.signal(signal.SIGINT, old)


def launched() -> bool:
    """Whether a launcher (torchrun, accelerate, `train --nproc`) started this process."""
    return "LOCAL_RANK" in os.environ


def check_recipe(recipe: Any, processes: int, launching: bool = False) -> None:
    """What cannot be spread over several processes, refused in one line. `launching`: the
    command that is about to start the processes asks (rather than one of them)."""
    from . import sharding
    from .errors import UserError

    sharding.check(recipe)
    if sharding.sharded(recipe) and not (launching or launched()):
        raise UserError(f"{recipe.where('distributed.sharding')}distributed.sharding: "
                        f"{recipe.distributed.sharding} runs in processes started by a launcher; "
                        "use 'adapters-sft train RECIPE --nproc N' (or torchrun)")

    if sharding.sharded(recipe) and recipe.training.get("mlp_tile_tokens") is not None:
        raise UserError(f"{recipe.where('training.mlp_tile_tokens')}training.mlp_tile_tokens: the "
                        "tiled MLP is proven in one process and under data-parallel --nproc, not "
                        f"with distributed.sharding={recipe.distributed.sharding}; unset one of them")
    if processes > 1 and getattr(recipe.strategy, "unfreeze_every", None) is not None:
        raise UserError(f"{recipe.where('strategy.unfreeze_every')}strategy.unfreeze_every: gradual "
                        "unfreezing thaws parameters that data-parallel training did not register, "
                        "so the processes would drift apart; train in one process, or unset it")

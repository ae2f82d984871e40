"""`adapters-sft train --nproc N` (and --nnodes): start the training processes under
torch.distributed.run, each re-running this command; which process is which, and what only the
main one does, is processes.py's."""
from __future__ import annotations

import os
import subprocess
import sys
from typing import Any


def launch(nproc: int, argv: list[str], nnodes: int = 1, node_rank: int = 0,
           rdzv_endpoint: str | None = None, ready: Any = None) -> int:
    """Run `adapters-sft ARGV` in `nproc` processes on this machine (times `nnodes` machines)
    under torch.distributed.run; returns the exit status of the launch. `ready`: what the
    launching command's pre-flight built, whose rows and tokenized data are handed to the
    processes (data/handoff.py)."""
    if ready is None:
        return _launch(nproc, argv, nnodes, node_rank, rdzv_endpoint, {})
    import tempfile
    from pathlib import Path

    from .data import handoff

    with tempfile.TemporaryDirectory(prefix="adapters-sft-prepared-") as folder:
        handoff.save(ready.splits, ready.prepared, Path(folder))
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

"""Which process this is, in a run spread over several (torchrun, `accelerate launch`, or
`train --nproc N`), read from the launcher's environment. Imports nothing of ours: every layer
may ask it (distributed.py launches the processes and re-exports these)."""
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

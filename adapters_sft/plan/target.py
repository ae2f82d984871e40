"""The machine a plan is for: a GPU named on the command line (`--gpu 4090`, `--gpu 24GB`), the
CUDA GPU of this machine, or else this machine's CPU and RAM.

Sizes are the cards' nominal memory (NVIDIA's specifications), in GiB. Not all of it can hold
tensors: the CUDA context (the driver's and the kernels' own memory) takes some before the
first tensor; we assume 0.5 GiB, a typical figure for recent CUDA with lazily loaded kernels,
not one measured here. On a CPU the same place is taken by what this process already holds
(Python, PyTorch and the libraries), measured.
"""
from __future__ import annotations

import dataclasses
import re

from ..errors import UserError

GIB = 2**30
CUDA_CONTEXT = GIB // 2

# name -> (label, GiB, bf16): the cards people fine-tune on
GPUS: dict[str, tuple[str, int, bool]] = {
    "t4": ("T4 16 GB", 16, False), "v100": ("V100 16 GB", 16, False),
    "v100-32gb": ("V100 32 GB", 32, False), "3080": ("RTX 3080 10 GB", 10, True),
    "3090": ("RTX 3090 24 GB", 24, True),
    "4080": ("RTX 4080 16 GB", 16, True), "4090": ("RTX 4090 24 GB", 24, True),
    "5090": ("RTX 5090 32 GB", 32, True), "a10g": ("A10G 24 GB", 24, True),
    "l4": ("L4 24 GB", 24, True), "l40s": ("L40S 48 GB", 48, True), "a6000": ("RTX A6000 48 GB", 48, True),
    "a100-40gb": ("A100 40 GB", 40, True), "a100-80gb": ("A100 80 GB", 80, True),
    "h100": ("H100 80 GB", 80, True), "h200": ("H200 141 GB", 141, True),
}


@dataclasses.dataclass(frozen=True)
class Target:
    name: str
    memory: int    # bytes
    cuda: bool
    bf16: bool
    overhead: int  # bytes not available to the run's tensors (see module doc)
    overhead_note: str


# a shipped recipe's folder names the card it is for: gpu-24gb/, gpu-2x24gb/ (two of them)
_MEANT_FOR = re.compile(r"(?:^|/)gpu-(?:(\d+)x)?(\d+)gb(?:/|$)")


def meant_for(recipe_name: str) -> tuple[int, str] | None:
    """(GPUs, '24GB') for a recipe made for a GPU (its name is under gpu-SIZE/), else None."""
    found = _MEANT_FOR.search(recipe_name.replace("\\", "/"))
    return (int(found.group(1) or 1), f"{found.group(2)}GB") if found else None


def named_gpu(name: str) -> Target:
    key = name.strip().lower().removeprefix("rtx").strip().replace(" ", "")
    if key in GPUS:
        label, gib, bf16 = GPUS[key]
        return _gpu(label, gib * GIB, bf16)
    size = re.fullmatch(r"(\d+(?:\.\d+)?)(?:gb|gib|g)", key)
    if size:
        gib = float(size.group(1))
        if not 0 < gib <= 4096:
            raise UserError(f"--gpu {name}: a GPU's memory must be above 0 and at most 4096 GB; "
                            "give its size (e.g. 24GB) or a card's name")
        return _gpu(f"a {size.group(1)} GB GPU", int(gib * GIB), True)
    raise UserError(f"--gpu: unknown GPU '{name}'; give its memory (e.g. 24GB) or one of "
                    f"{', '.join(GPUS)}")


def _gpu(label: str, memory: int, bf16: bool) -> Target:
    return Target(label, memory, True, bf16, CUDA_CONTEXT, "CUDA context (assumed)")


def this_machine() -> Target:
    """This machine's first CUDA GPU, or its CPU and RAM."""
    import os

    import torch

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return _gpu(f"this machine's {props.name}", props.total_memory, torch.cuda.is_bf16_supported())
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return Target("this machine's CPU (RAM)", ram, False, False, _resident(),
                  "this process so far (Python, PyTorch)")


def _resident() -> int:
    import os

    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

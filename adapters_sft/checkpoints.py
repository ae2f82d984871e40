"""Checkpoints on disk: what a run needs to continue after a crash, holding only what trained.
(checkpoint_trainer.py is the Trainer side: when they are written, signals, restoring the log window.)

The Trainer writes a checkpoint's optimizer, scheduler, grad scaler, RNG states (python,
numpy, torch, CUDA; one file per rank) and trainer state (step, epoch, logs, stateful
callbacks); its data position is the step, which the Trainer turns back into batches to
skip. What we change:

  model part   `trained.safetensors`: the parameters that require grad (an adapter, a head,
               the trained blocks; the whole model only for `full`) plus those the optimizer
               holds frozen for gradual unfreezing, never the frozen base, which the run
               rebuilds from the recipe. A LoRA checkpoint of an 8B model
               is the adapter plus its optimizer state, not 16 GB of base weights.
  strategy     `strategy_state.safetensors`, where the strategy keeps more than parameters
               (AdaLoRA's importance scores and rank pattern)
  marker       `checkpoint.json`, written last (temp file, then rename), lists every file with
               its size. A folder without it, or whose files do not match it, was cut off
               mid-write and is never resumed from.
  rotation     ours, after the marker: the Trainer's own would delete older complete
               checkpoints before the new one is marked.
  schedule     `checkpoint.every_steps` and/or `every_minutes` (default every 10 minutes, so a
               short run writes none), and on SIGINT/SIGTERM after the step in flight.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from .fields import Range, option

TRAINED = "trained.safetensors"
STRATEGY_STATE = "strategy_state.safetensors"  # what else a strategy's exact resume needs
MARKER = "checkpoint.json"
# Without these a resume would silently restart the optimizer or the schedule.
REQUIRED = (TRAINED, "optimizer.pt", "scheduler.pt", "trainer_state.json")
# ... or under another name: the optimizer state FSDP gathers is optimizer.bin (sharding.py)
OR = {"optimizer.pt": "optimizer.bin"}
_NAME = re.compile(r"^checkpoint-(\d+)$")


@dataclasses.dataclass
class CheckpointSection:
    every_steps: int | None = option(None, "save a checkpoint every N optimizer steps", Range(1))
    every_minutes: float | None = option(10.0, "save a checkpoint when N minutes have passed since "
                                               "the last one (null: only every_steps)",
                                         Range(0, low_open=True))
    keep: int = option(2, "complete checkpoints kept; older ones are deleted", Range(1))


def step_of(folder: Path) -> int:
    match = _NAME.match(folder.name)
    return int(match.group(1)) if match else -1


def problem(folder: Path) -> str | None:
    """Why `folder` cannot be resumed from, or None if it is complete: its marker, every file
    it lists at its size, and the headers of the files a resume reads (cheap: no tensor is
    loaded), so a damaged file is skipped like a cut-off one rather than failing the resume."""
    try:
        marker = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return "no completion marker (cut off while it was written)"
    files = marker.get("files") if isinstance(marker, dict) else None
    if not isinstance(files, dict) or not all(isinstance(v, int) for v in files.values()):
        return f"its {MARKER} is not what adapters-sft writes (damaged or edited)"
    missing = [name for name in REQUIRED if name not in files and OR.get(name) not in files]
    if missing:
        return f"it has no {missing[0]}"
    for name, size in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size} bytes, the marker says {size}"
        damage = damaged(path)
        if damage:
            return f"{name} is damaged ({damage})"
    return None


def damaged(path: Path) -> str | None:
    """What is wrong with the header of a file a resume reads, or None: a safetensors file's
    header must parse and its tensors fit the file; torch's .pt/.pth/.bin are zip archives
    (first and last records); JSON must parse."""
    import struct
    import zipfile

    suffix = path.suffix
    try:
        if suffix == ".safetensors":
            with open(path, "rb") as f:
                head = f.read(8)
                if len(head) < 8:
                    return "shorter than a safetensors header"
                (length,) = struct.unpack("<Q", head)
                if length > path.stat().st_size - 8:
                    return "its header length runs past the end of the file"
                header = json.loads(f.read(length))
            ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"]
            if ends and max(ends) + 8 + length > path.stat().st_size:
                return "its tensors run past the end of the file"
        elif suffix in (".pt", ".pth", ".bin"):
            with open(path, "rb") as f:
                if f.read(4) != b"PK\x03\x04" or not zipfile.is_zipfile(path):
                    return "not the zip archive torch.save writes"
        elif suffix == ".json":
            json.loads(path.read_text())
    except (OSError, ValueError, KeyError, TypeError, IndexError, struct.error) as exc:
        return f"unreadable header: {type(exc).__name__}"
    return None


def all_checkpoints(root: Path) -> list[Path]:
    """checkpoint-N folders under `root`, newest first."""
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if p.is_dir() and step_of(p) >= 0), key=step_of, reverse=True)


def latest(root: Path, before_end: bool = False) -> tuple[Path | None, list[str]]:
    """(the newest complete checkpoint, one line per newer one skipped and why). With
    `before_end`, checkpoints written at the last step (a Trainer save schedule, a best-model
    save) are skipped too: resuming from an earlier one recomputes those steps exactly."""
    skipped = []
    for folder in all_checkpoints(root):
        why = problem(folder)
        if why is None and before_end:
            marker = marker_data(folder)
            if marker.get("step", 0) >= marker.get("max_steps", float("inf")):
                why = "written at the end of training; the steps after the one before are recomputed"
        if why is None:
            return folder, skipped
        skipped.append(f"{folder.name}: {why}")
    return None, skipped


def marker_data(folder: Path) -> dict[str, Any]:
    data = json.loads((folder / MARKER).read_text())
    return data if isinstance(data, dict) else {}


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _mark(folder: Path, extra: dict[str, Any]) -> None:
    """Flush every file to disk, then write the marker (temp file, rename): a marker on disk
    means the files it lists are on disk too, even after a power cut."""
    paths = [p for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.startswith(MARKER)]
    for path in paths:
        _fsync(path)
    files = {str(p.relative_to(folder)): p.stat().st_size for p in paths}
    tmp = folder / (MARKER + ".tmp")
    tmp.write_text(json.dumps({**extra, "files": files}, indent=1) + "\n")
    _fsync(tmp)
    os.replace(tmp, folder / MARKER)
    _fsync(folder)


def rotate(root: Path, keep: int, protect: str | None = None) -> None:
    """Delete complete checkpoints beyond the newest `keep` (never `protect`, the best one)
    and unfinished ones older than the newest complete one."""
    complete = 0
    for folder in all_checkpoints(root):
        if protect and folder.resolve() == Path(protect).resolve():
            continue
        if problem(folder) is None:
            complete += 1
            if complete > keep:
                shutil.rmtree(folder, ignore_errors=True)
        elif complete:
            shutil.rmtree(folder, ignore_errors=True)


def discard_after(root: Path, step: int) -> None:
    """Before resuming from `step`: checkpoints past it (unfinished) go."""
    for folder in all_checkpoints(root):
        if step_of(folder) > step:
            shutil.rmtree(folder, ignore_errors=True)


def save_trained(model: Any, path: Path, optimizer: Any = None,
                 state_dict: dict[str, Any] | None = None, later: list[Any] = ()) -> None:
    """What trains: the parameters that require grad, plus those the optimizer holds frozen
    for later (gradual unfreezing) and the strategy's `later` (frozen now, trained before or
    after: LISA's and BAdam's other blocks), so a checkpoint restores them too. `state_dict`: a
    sharded run's weights, gathered by the Trainer (the parameters themselves are shards)."""
    from safetensors.torch import save_file

    from .strategies.base import trainable_tensors

    held = [p for group in (optimizer.param_groups if optimizer else []) for p in group["params"]]
    held += list(later)
    save_file(trainable_tensors(model, held, state_dict), str(path))


def load_trained(model: Any, path: Path) -> None:
    """Copy a checkpoint's tensors into `model` in place, by parameter name. Parameters frozen
    now but trained then (gradual unfreezing) are included: they get their trained values.
    A sharded model (FSDP) takes them through torch's distributed state-dict loader: the main
    process reads the file, and every process keeps its own shard of each tensor."""
    from torch.distributed.tensor import DTensor

    from .strategies.base import copy_into

    if not any(isinstance(p, DTensor) for p in model.parameters()):
        copy_into(model, path)
        return
    from safetensors.torch import load_file
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    from .processes import is_main

    tensors = load_file(str(path)) if is_main() else {}
    set_model_state_dict(model, tensors, options=StateDictOptions(
        full_state_dict=True, broadcast_from_rank0=True, strict=False))

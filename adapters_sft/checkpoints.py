"""Checkpoints: what a run needs to continue after a crash, holding only what trained.

The Trainer writes a checkpoint's optimizer, scheduler, grad scaler, RNG states (python,
numpy, torch, CUDA; one file per rank) and trainer state (step, epoch, logs, stateful
callbacks); its data position is the step, which the Trainer turns back into batches to
skip. What we change:

  model part   `trained.safetensors`: exactly the parameters that require grad (an adapter, a
               head, the trained blocks; the whole model only for `full`), never the frozen
               base, which the run rebuilds from the recipe. A LoRA checkpoint of an 8B model
               is the adapter plus its optimizer state, not 16 GB of base weights.
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
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .errors import UserError
from .typed import option

TRAINED = "trained.safetensors"
MARKER = "checkpoint.json"
_NAME = re.compile(r"^checkpoint-(\d+)$")


@dataclasses.dataclass
class CheckpointSection:
    every_steps: int | None = option(None, "save a checkpoint every N optimizer steps")
    every_minutes: float | None = option(10.0, "save a checkpoint when N minutes have passed since "
                                               "the last one (null: only every_steps)")
    keep: int = option(2, "complete checkpoints kept; older ones are deleted")

    def __post_init__(self) -> None:
        if self.every_steps is not None and self.every_steps < 1:
            raise UserError(f"checkpoint.every_steps: must be at least 1 (or null), got {self.every_steps}")
        if self.every_minutes is not None and self.every_minutes <= 0:
            raise UserError("checkpoint.every_minutes: must be above 0 (or null), got "
                            f"{self.every_minutes}")
        if self.keep < 1:
            raise UserError(f"checkpoint.keep: must be at least 1, got {self.keep}")


def step_of(folder: Path) -> int:
    match = _NAME.match(folder.name)
    return int(match.group(1)) if match else -1


def problem(folder: Path) -> str | None:
    """Why `folder` cannot be resumed from, or None if it is complete."""
    try:
        marker = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return "no completion marker (cut off while it was written)"
    for name, size in marker.get("files", {}).items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size} bytes, the marker says {size}"
    return None


def all_checkpoints(root: Path) -> list[Path]:
    """checkpoint-N folders under `root`, newest first."""
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if p.is_dir() and step_of(p) >= 0), key=step_of, reverse=True)


def latest(root: Path) -> tuple[Path | None, list[str]]:
    """(the newest complete checkpoint, one line per newer one skipped and why)."""
    skipped = []
    for folder in all_checkpoints(root):
        why = problem(folder)
        if why is None:
            return folder, skipped
        skipped.append(f"{folder.name}: {why}")
    return None, skipped


def marker_data(folder: Path) -> dict[str, Any]:
    return json.loads((folder / MARKER).read_text())


def _mark(folder: Path, extra: dict[str, Any]) -> None:
    files = {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*"))
             if p.is_file() and p.name != MARKER}
    tmp = folder / (MARKER + ".tmp")
    tmp.write_text(json.dumps({**extra, "files": files}, indent=1) + "\n")
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, folder / MARKER)


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


def save_trained(model: Any, path: Path) -> None:
    from safetensors.torch import save_file

    from .strategies.base import trainable_tensors

    save_file(trainable_tensors(model), str(path))


def load_trained(model: Any, path: Path) -> None:
    """Copy a checkpoint's tensors into `model` in place, by parameter name. Parameters frozen
    now but trained then (gradual unfreezing) are included: they get their trained values."""
    from .strategies.base import copy_into

    copy_into(model, path)


def durable(base: type) -> type:
    """`base` (SFTTrainer or Trainer) with checkpoints that hold only what trained, a
    completion marker and our rotation."""

    class Durable(base):  # type: ignore[misc, valid-type]
        keep_checkpoints: int = 2

        def _save(self, output_dir: str | None = None, state_dict: Any = None) -> None:
            # Called for checkpoints only (the run's artifact is the strategy's own save).
            if not self.args.should_save:
                return
            out = Path(output_dir or self.args.output_dir)
            out.mkdir(parents=True, exist_ok=True)
            save_trained(self.model, out / TRAINED)

        def _save_checkpoint(self, model: Any, trial: Any) -> None:
            super()._save_checkpoint(model, trial)
            if not self.args.should_save:
                return
            root = Path(self._get_output_dir(trial=trial))
            folder = root / f"checkpoint-{self.state.global_step}"
            # TRL counts tokens outside the trainer state; carry it so num_tokens continues
            _mark(folder, {"step": self.state.global_step,
                           "train_tokens": getattr(self, "_total_train_tokens", None)})
            rotate(root, self.keep_checkpoints, self.state.best_model_checkpoint)

        def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
            folder = Path(resume_from_checkpoint)
            load_trained(model if model is not None else self.model, folder / TRAINED)
            tokens = marker_data(folder).get("train_tokens")
            if tokens is not None and hasattr(self, "_total_train_tokens"):
                self._total_train_tokens = tokens

        def _load_best_model(self) -> None:
            load_trained(self.model, Path(self.state.best_model_checkpoint) / TRAINED)

    Durable.__name__ = Durable.__qualname__ = f"Durable{base.__name__}"
    return Durable


class StopRequest:
    """Set by SIGINT/SIGTERM during training; the schedule callback then saves and stops."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""


@contextmanager
def stop_on_signals(request: StopRequest) -> Iterator[None]:
    """The first SIGINT/SIGTERM asks for a checkpoint and a clean stop after the step in
    flight; a second one stops at once (KeyboardInterrupt)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def handler(signum: int, frame: Any) -> None:
        if request.signum is not None:
            raise KeyboardInterrupt
        request.signum = signum

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def schedule_callback(section: CheckpointSection, request: StopRequest) -> Any:
    from transformers import TrainerCallback

    class CheckpointSchedule(TrainerCallback):
        def __init__(self) -> None:
            self.last = time.monotonic()

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.last = time.monotonic()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if request.signum is not None:
                control.should_save = control.should_training_stop = True
                return
            if state.global_step >= state.max_steps:
                return  # the run is about to finish; its result is saved instead
            every, minutes = section.every_steps, section.every_minutes
            if (every and state.global_step % every == 0) or \
                    (minutes and time.monotonic() - self.last >= minutes * 60):
                control.should_save = True

        def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.last = time.monotonic()

    return CheckpointSchedule()

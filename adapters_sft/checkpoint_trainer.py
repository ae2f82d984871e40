"""The Trainer side of checkpoints (checkpoints.py is the format on disk): a Trainer subclass
whose checkpoints hold only what trained, when they are written, and SIGINT/SIGTERM.

A resumed run must log what the uninterrupted one logs. The Trainer restores the weights,
optimizer, scheduler, RNG and step, but restarts its logging window (the loss summed since
the last log line) and TRL's per-step metrics from zero; a checkpoint between two log lines
would make the next logged loss an average over fewer steps. The marker carries that window
and it is put back when training starts.

When: `checkpoint.every_steps` / `every_minutes`, and after the step in flight on a signal.
With evaluation every epoch, a save due on an epoch's last step waits for that epoch's
evaluation (a resumed run starts the next epoch and would never evaluate it); a signal in
mid-epoch does not trigger an evaluation of the partial epoch.
"""
from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from . import checkpoints


def checkpointing(base: type) -> type:
    """`base` (SFTTrainer or Trainer) with checkpoints that hold only what trained, a
    completion marker, our rotation and the logging window carried across a resume; its log
    lines also say what each step cost (measure.py)."""
    from transformers import TrainerCallback

    class RestoreLogWindow(TrainerCallback):
        def __init__(self, trainer: Any) -> None:
            self.trainer = trainer

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.trainer._restore_log_window()

    from .measure import measured

    class Durable(measured(base)):  # type: ignore[misc, valid-type]
        keep_checkpoints: int = 2
        strategy: Any = None  # set by trainer.build_trainer: its checkpoint_state is saved too
        stop_request: StopRequest | None = None  # set by trainer.train

        def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
            # the Trainer logs its end-of-run summary (train_runtime, train_loss) after a stop
            # on a signal too, where it would read as a finished run before "stopped by SIGINT"
            stopped = self.stop_request is not None and self.stop_request.signum is not None
            if stopped and "train_runtime" in logs and self.state.global_step < self.state.max_steps:
                return
            super().log(logs, *args, **kwargs)

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pending_window: dict[str, Any] | None = None
            self.loss_before_resume = 0.0  # the loss summed over the steps of earlier sessions
            self.add_callback(RestoreLogWindow(self))

        def _save(self, output_dir: str | None = None, state_dict: Any = None) -> None:
            # Called for checkpoints only (the run's artifact is the strategy's own save).
            if not self.args.should_save:
                return
            out = Path(output_dir or self.args.output_dir)
            out.mkdir(parents=True, exist_ok=True)
            # a sharded run (FSDP) hands the weights gathered from every process
            later = self.strategy.later_params() if self.strategy else []
            checkpoints.save_trained(self.model, out / checkpoints.TRAINED, self.optimizer, state_dict, later)

        def _save_checkpoint(self, model: Any, trial: Any) -> None:
            root = Path(self._get_output_dir(trial=trial))
            from .processes import barrier

            folder = root / f"checkpoint-{self.state.global_step}"
            if self.args.should_save:  # written again: not complete
                (folder / checkpoints.MARKER).unlink(missing_ok=True)
            super()._save_checkpoint(model, trial)
            extra = self.strategy.checkpoint_state() if self.args.should_save and self.strategy else {}
            if extra:  # before the marker, which lists it
                from safetensors.torch import save_file

                save_file(extra, str(folder / checkpoints.STRATEGY_STATE))
            barrier()  # every process has written its part (its RNG state) before the marker
            if not self.args.should_save:
                return
            # FSDP's own copy of the whole model (a pickle); the checkpoint's model part is
            # trained.safetensors, written from the same gathered weights
            for duplicate in folder.glob("pytorch_model_fsdp*.bin"):
                duplicate.unlink()
            metrics = getattr(self, "_metrics", {}).get("train", {})  # TRL's, between log lines
            checkpoints._mark(folder, {
                "step": self.state.global_step, "max_steps": self.state.max_steps,
                "train_tokens": getattr(self, "_total_train_tokens", None),
                "window": {"loss": float(self._tr_loss.item()),
                           "last_logged": self._globalstep_last_logged,
                           "total_loss": self.loss_before_resume + self._total_loss_scalar,
                           "trl": {k: [float(x) for x in v] for k, v in metrics.items()}}})
            checkpoints.rotate(root, self.keep_checkpoints, self.state.best_model_checkpoint)

        def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
            folder = Path(resume_from_checkpoint)
            checkpoints.load_trained(model if model is not None else self.model,
                                     folder / checkpoints.TRAINED)
            extra = folder / checkpoints.STRATEGY_STATE
            if extra.is_file() and self.strategy is not None:
                from safetensors.torch import load_file

                self.strategy.restore_checkpoint_state(load_file(str(extra)))
            marker = checkpoints.marker_data(folder)
            if marker.get("train_tokens") is not None and hasattr(self, "_total_train_tokens"):
                self._total_train_tokens = marker["train_tokens"]
            self._pending_window = marker.get("window")

        def _restore_log_window(self) -> None:
            import torch

            window, self._pending_window = self._pending_window, None
            if window is None:
                return
            self._tr_loss = torch.tensor(window["loss"], device=self.args.device)
            self._globalstep_last_logged = window["last_logged"]
            self.loss_before_resume = window["total_loss"]
            if hasattr(self, "_metrics"):
                self._metrics["train"].clear()
                self._metrics["train"].update({k: list(v) for k, v in window["trl"].items()})

        def _load_best_model(self) -> None:
            checkpoints.load_trained(self.model, Path(self.state.best_model_checkpoint) / checkpoints.TRAINED)

        def run_train_loss(self) -> float:
            """The mean training loss over the whole run, earlier sessions included (the
            Trainer's own `train_loss` covers this session only)."""
            return (self.loss_before_resume + self._total_loss_scalar) / max(self.state.global_step, 1)

    Durable.__name__ = Durable.__qualname__ = f"Durable{base.__name__}"
    return Durable


class StopRequest:
    """Set by SIGINT/SIGTERM during training; the schedule callback then saves and stops."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.at = 0.0  # when it arrived (time.monotonic)

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
            # under torchrun one Ctrl-C arrives twice (the terminal's, then the one torchrun
            # forwards): a repeat within 3 s is the same request
            if time.monotonic() - request.at > 3:
                raise KeyboardInterrupt
            return
        request.signum, request.at = signum, time.monotonic()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def agree(signum: int, due: bool) -> tuple[int, bool]:
    """The largest signal number and whether any process found a checkpoint due, over all
    processes of the run (one collective per step, in multi-process runs only)."""
    from .processes import all_reduce

    most, any_due = all_reduce([signum, int(due)], op="max")
    return int(most), bool(any_due)


def schedule_callback(section: checkpoints.CheckpointSection, request: StopRequest) -> Any:
    from transformers import TrainerCallback

    class CheckpointSchedule(TrainerCallback):
        def __init__(self) -> None:
            self.last = time.monotonic()
            self.at_epoch_end = False

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.last = time.monotonic()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.global_step >= state.max_steps:
                return  # training is complete; the run's result is saved, not a checkpoint
            every, minutes = section.every_steps, section.every_minutes
            due = bool(every and state.global_step % every == 0) or \
                bool(minutes and time.monotonic() - self.last >= minutes * 60)
            # every process must take the same decision (a save is collective): the signal
            # one process got, or the clock one of them read, counts for all
            signum, due = agree(request.signum or 0, due)
            if signum and request.signum is None:
                request.signum = signum
            stopping = request.signum is not None
            due = due or stopping
            if stopping:
                control.should_training_stop = True
            if not due:
                return
            if args.eval_strategy == "epoch" and abs(state.epoch - round(state.epoch)) < 1e-9:
                self.at_epoch_end = True  # after this epoch's evaluation
            else:
                control.should_save = True

        def on_epoch_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if self.at_epoch_end:
                control.should_save, self.at_epoch_end = True, False
            elif request.signum is not None:  # stopped mid-epoch: no evaluation of a part
                control.should_evaluate = control.should_save = False

        def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.last = time.monotonic()

    return CheckpointSchedule()

"""Gradual unfreezing (Howard & Ruder 2018, ULMFiT), an option of `freeze` and `full`.

Training starts with only the top (head) trainable; every `unfreeze_every` optimizer steps,
or at the start of each epoch with `unfreeze_every: epoch`, the next block down is unfrozen,
down to the strategy's floor (freeze: its top N blocks; full: every block, then the
embeddings). The parameters of later stages sit in the optimizer from the start
(`later_params`, optim.py), frozen: they get no gradient, so AdamW leaves them untouched
until their stage comes, and from then on trains them.
"""
from __future__ import annotations

from typing import Any

from ..errors import UserError


def check_every(every: int | str | None) -> None:
    if every is None or every == "epoch" or (isinstance(every, int) and every >= 1):
        return
    raise UserError(f"strategy.unfreeze_every: a number of steps (1 or more) or 'epoch', got {every!r}")


def unfreeze_callback(stages: list[list[Any]], every: int | str) -> Any:
    from transformers import TrainerCallback

    class GradualUnfreeze(TrainerCallback):
        """Unfreezes stage k (1-based) at step k * every, or at the start of epoch k."""

        def __init__(self) -> None:
            self.done = 0
            self.unfrozen_at: list[int] = []  # global step at which each stage unfroze

        def reach(self, stage: int, step: int) -> None:
            for params in stages[self.done:stage]:
                for p in params:
                    p.requires_grad_(True)
                self.unfrozen_at.append(step)
            self.done = max(self.done, min(stage, len(stages)))

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if isinstance(every, int):
                self.reach(state.global_step // every, state.global_step)

        def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if every == "epoch":  # from the state, so a resumed run thaws where it left off
                self.reach(int(state.epoch + 1e-6), state.global_step)

    return GradualUnfreeze()


def inputs_require_grads(trainer: Any) -> None:
    """A frozen bottom gives checkpointed blocks inputs without grad; reentrant checkpointing
    would then drop the gradients of the blocks above it: make the inputs require grad."""
    model = trainer.model
    if trainer.args.gradient_checkpointing and hasattr(model, "enable_input_require_grads") \
            and any(not p.requires_grad for p in model.parameters()):
        model.enable_input_require_grads()


class Gradual:
    """Mixin for strategies with an `unfreeze_every` option."""

    _stages: list[list[Any]] = []

    def start_frozen(self, stages: list[list[Any]]) -> None:
        """Freeze `stages` (top block first) for the callback to thaw one by one."""
        if self.opts.unfreeze_every is None:
            return
        for params in stages:
            for p in params:
                p.requires_grad_(False)
        self._stages = stages

    def later_params(self) -> list[Any]:
        return [p for params in self._stages for p in params]

    def after_trainer(self, trainer: Any) -> None:
        inputs_require_grads(trainer)
        if self._stages:
            self.unfreezer = unfreeze_callback(self._stages, self.opts.unfreeze_every)
            trainer.add_callback(self.unfreezer)

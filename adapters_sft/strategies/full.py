"""full: every parameter trains; the whole model is saved as safetensors.

The reference point for quality and the most memory-hungry strategy (weights, gradients and
two Adam moments for every parameter). With `unfreeze_every`, training starts with only the
top (head) and thaws one block per stage, then the embeddings (unfreeze.py). With
`badam_switch_every`, one block at a time trains with Adam, BAdam's block coordinate descent
(badam.py). GaLore and APOLLO are optimizers, `training.optim` (training/low_rank.py).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..layers import anatomy
from ..fields import Range, option
from .badam import MODES, Badam, check_installed
from .base import Options, Prepared, Strategy
from .unfreeze import Gradual, check_every


@dataclasses.dataclass
class FullOptions(Options):
    unfreeze_every: int | str | None = option(None, "gradual unfreezing: start with the head, thaw "
                                                    "one more block every N steps, or 'epoch'",
                                              Range(1))

    badam_switch_every: int | None = option(None, "BAdam: train one block at a time with Adam, the "
                                                  "next every N steps (the badam extra); unset: all "
                                                  "at once", Range(1))
    badam_switch_mode: str = option("descending", "BAdam's block order: descending (from the top), "
                                                  "ascending or random")

    def __post_init__(self) -> None:
        check_every(self.unfreeze_every)
        if self.badam_switch_mode not in MODES:
            raise UserError(f"strategy.badam_switch_mode: '{self.badam_switch_mode}' is not one of "
                            f"{', '.join(MODES)}")
        if self.badam_switch_every is not None and self.unfreeze_every is not None:
            raise UserError("strategy.badam_switch_every: BAdam picks the trainable block itself; "
                            "remove strategy.unfreeze_every")


class FullStrategy(Gradual, Strategy):
    name = "full"
    Options = FullOptions
    artifact = "weights"
    summary = "train every parameter; saves the full model (safetensors)"

    def preflight(self) -> None:
        if self.badam is not None:
            check_installed()

    @property
    def badam(self) -> Badam | None:
        every = getattr(self.opts, "badam_switch_every", None)
        if every is not None and getattr(self, "_badam", None) is None:
            self._badam = Badam(every, self.opts.badam_switch_mode)
            self.later_counted = False  # one block at a time holds gradients and moments
        return getattr(self, "_badam", None)

    def check_processes(self, processes: int) -> None:
        if processes > 1 and self.badam is not None:
            raise UserError("strategy.badam_switch_every: BAdam trains in one process here (DDP fixes "
                            "the trainable parameters when it wraps the model); run without --nproc")

    def builds_optimizer(self) -> str | None:
        return "strategy.badam_switch_every" if self.badam is not None else None

    def prepare(self, model: Any) -> Prepared:
        if self.badam is not None:
            self.badam.prepare(model)
            return Prepared(model)
        for p in model.parameters():
            p.requires_grad_(True)
        parts = anatomy(model)
        stages = [[p for _, p in block] for block in parts.blocks[::-1]]
        self.start_frozen(stages + ([[p for _, p in parts.bottom]] if parts.bottom else []))
        return Prepared(model)

    def later_params(self) -> list[Any]:
        if self.badam is not None:  # every block: BAdam trains them in turn (a checkpoint keeps them)
            return self.badam.blocks
        return super().later_params()

    def after_trainer(self, trainer: Any) -> None:
        super().after_trainer(trainer)
        if self.badam is not None:
            self.badam.install(trainer)

    def checkpoint_state(self) -> dict[str, Any]:
        return self.badam.state() if self.badam is not None else {}

    def restore_checkpoint_state(self, tensors: dict[str, Any]) -> None:
        if self.badam is not None:
            self.badam.resume(tensors)

    def save(self, model: Any, out: Path, state_dict: dict[str, Any] | None = None) -> None:
        if state_dict is not None:  # a tied head once, under the embedding's name, as unsharded
            tied = {n for n, _ in model.named_parameters(remove_duplicate=False)} - \
                {n for n, _ in model.named_parameters()}
            state_dict = {k: v for k, v in state_dict.items() if k not in tied}
        model.save_pretrained(out, safe_serialization=True, state_dict=state_dict)

    def load_trained(self, base: Any, out: Path) -> Any:
        from safetensors.torch import load_file

        state = {}
        for shard in sorted(out.glob("*.safetensors")):
            state.update(load_file(str(shard)))
        if not state:
            raise UserError(f"{out}: no .safetensors weights; the run did not finish saving")
        # strict=False: a tied head is saved once, under the embedding's name.
        missing, unexpected = base.load_state_dict(state, strict=False)
        tied = {n for n, p in base.named_parameters(remove_duplicate=False)} - \
            {n for n, _ in base.named_parameters()}
        missing = [k for k in missing if k not in tied]
        if unexpected or missing:
            what = f"'{unexpected[0]}' does not fit" if unexpected else f"'{missing[0]}' is missing for"
            raise UserError(f"{out}: weight {what} the base model; was the run trained on another model?")
        return base

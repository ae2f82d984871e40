"""lisa: layer-wise importance sampling (Pan et al. 2024, LISA, arXiv:2403.17919).

Full-parameter updates on a few blocks at a time: the embeddings and everything above the
blocks (final norm, head) always train; of the transformer blocks, `active_blocks` drawn at
random train, and every `switch_every` optimizer steps a new draw replaces them. Gradients
and AdamW moments exist only for what trains now: when blocks leave the draw their moments are
dropped (a block drawn again starts fresh, as in the paper), so memory is that of training
K blocks, not the model, and the plan counts it so.

The draw for stage s (steps s*M .. s*M+M-1) is a function of `training.seed` and s alone, so a
run resumed from a checkpoint trains the same blocks as the uninterrupted run; the optimizer
state the checkpoint holds is the active blocks'. Every parameter can change, so the whole
model is saved (as `full`). One process only: DDP fixes the trainable set when it wraps the model.
"""
from __future__ import annotations

import dataclasses
import random
from typing import Any

from ..errors import UserError
from ..fields import Range, option
from ..layers import anatomy
from .base import Options, Prepared
from .full import FullStrategy


@dataclasses.dataclass
class LisaOptions(Options):
    active_blocks: int = option(2, "transformer blocks trained at a time (K), drawn at random", Range(1))
    switch_every: int = option(20, "draw new blocks every M optimizer steps", Range(1))


def draw(blocks: int, k: int, seed: int, stage: int) -> list[int]:
    """The blocks that train in `stage`, bottom first."""
    return sorted(random.Random(f"lisa:{seed}:{stage}").sample(range(blocks), k))


class LisaStrategy(FullStrategy):
    name = "lisa"
    Options = LisaOptions
    summary = "full updates on K random blocks at a time (resampled every M steps), embeddings " \
              "and head always; saves the full model"
    #: the plan counts only the K active blocks: the others hold no gradient or moments
    later_counted = False

    def prepare(self, model: Any) -> Prepared:
        parts = anatomy(model)
        if self.opts.active_blocks > len(parts.blocks):
            raise UserError(f"strategy.active_blocks: {self.opts.active_blocks}, but the model has "
                            f"{len(parts.blocks)} transformer blocks; use {len(parts.blocks)} or "
                            "fewer, or strategy full")
        self._blocks = [[p for _, p in block] for block in parts.blocks]
        for p in model.parameters():
            p.requires_grad_(True)
        self.activate(draw(len(self._blocks), self.opts.active_blocks, 42, 0))
        return Prepared(model)

    def activate(self, active: list[int], optimizer: Any = None) -> None:
        """Only the `active` blocks train; the moments of the others are dropped."""
        for i, params in enumerate(self._blocks):
            for p in params:
                p.requires_grad_(i in active)
                if i not in active:
                    p.grad = None
                    if optimizer is not None:
                        optimizer.state.pop(p, None)
        self.active = active

    def later_params(self) -> list[Any]:
        # every block sits in the optimizer from the start (optim.py), frozen until drawn
        return [p for params in self._blocks for p in params]

    def check_processes(self, processes: int) -> None:
        if processes > 1:
            raise UserError("strategy lisa: trains in one process (DDP fixes the trainable "
                            "parameters when it wraps the model); run without --nproc")

    def after_trainer(self, trainer: Any) -> None:
        from transformers import TrainerCallback

        strategy, seed, every = self, trainer.args.seed, self.opts.switch_every
        n, k = len(self._blocks), self.opts.active_blocks
        self.activate(draw(n, k, seed, 0))

        class Resample(TrainerCallback):
            """At each optimizer step's start: the draw of its stage (a resumed run's too)."""

            def __init__(self) -> None:
                self.draws: dict[int, list[int]] = {}  # global step -> blocks drawn there

            def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                active = draw(n, k, seed, state.global_step // every)
                if active != strategy.active or not self.draws:
                    strategy.activate(active, kwargs.get("optimizer"))
                    self.draws[state.global_step] = active

        self.resampler = Resample()
        trainer.add_callback(self.resampler)

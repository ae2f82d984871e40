"""freeze: partial fine-tuning. The top N transformer blocks and everything above them (final
norm, pooler, head) train; the rest stays frozen. Only what trained is saved.

`trainable` adds parameters by regex (searched in parameter names, e.g. `embed_tokens` or
`layers\\.0\\.`), alone or next to `trainable_layers`. A causal LM's head is untied from the
embeddings first (as head-only does), so it trains without moving the input side.
With `unfreeze_every`, the N blocks thaw one at a time from the top (unfreeze.py).
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any

from ..errors import UserError
from ..layers import anatomy
from ..fields import Range, option
from .base import Options, Prepared
from .head_only import TrainedPartStrategy
from .unfreeze import Gradual, check_every


@dataclasses.dataclass
class FreezeOptions(Options):
    trainable_layers: int | None = option(2, "train the top N transformer blocks plus everything "
                                             "above them (final norm, pooler, head)", Range(0))
    trainable: list[str] = option([], "regexes: parameters whose name matches also train, e.g. "
                                      "['embed_tokens']")
    unfreeze_every: int | str | None = option(None, "gradual unfreezing: start with the head, thaw "
                                                    "one more block every N steps, or 'epoch'",
                                              Range(1))

    def __post_init__(self) -> None:
        if not self.trainable_layers and not self.trainable and self.trainable_layers is None:
            raise UserError("strategy.trainable_layers: unset and strategy.trainable empty, so "
                            "nothing would train; set one of them")
        for rx in self.trainable:
            try:
                re.compile(rx)
            except re.error as exc:
                raise UserError(f"strategy.trainable: '{rx}' is not a regex ({exc})") from None
        check_every(self.unfreeze_every)
        if self.unfreeze_every is not None and not self.trainable_layers:
            raise UserError("strategy.unfreeze_every: needs strategy.trainable_layers (the blocks "
                            "to thaw one by one)")


class FreezeStrategy(Gradual, TrainedPartStrategy):
    name = "freeze"
    Options = FreezeOptions
    summary = "train the top N blocks and the head (or parameters by regex); saves what trained"

    def prepare(self, model: Any) -> Prepared:
        self.untie_and_freeze(model)
        parts = anatomy(model)
        n = self.opts.trainable_layers or 0
        if n > len(parts.blocks):
            raise UserError(f"strategy.trainable_layers: {n}, but the model has {len(parts.blocks)} "
                            f"transformer blocks; use {len(parts.blocks)} or fewer, or strategy full")
        top_blocks = parts.blocks[len(parts.blocks) - n:][::-1]  # top block first
        chosen = [p for _, p in parts.top] + [p for block in top_blocks for _, p in block]
        names = [name for name, _ in model.named_parameters()]
        for rx in self.opts.trainable:
            hits = [p for name, p in model.named_parameters() if re.search(rx, name)]
            if not hits:
                raise UserError(f"strategy.trainable: '{rx}' matches no parameter; names look like "
                                f"'{names[len(names) // 2]}'")
            chosen += hits
        for p in chosen:
            p.requires_grad_(True)
        self.start_frozen([[p for _, p in block] for block in top_blocks])
        return Prepared(model)

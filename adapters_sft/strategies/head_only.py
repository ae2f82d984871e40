"""head-only: train the output head and nothing else.

The cheapest strategy: a linear probe on frozen features. Many LLMs (SmolLM2 among them) tie
the output head to the input embeddings; training the tied matrix would change the input
side too, so we first give the head its own copy of the weights ("untie"), which leaves the
model's outputs unchanged, and train that copy alone. Only the head is saved.

For `task: classification` the head is the new classifier (`classifier`, `score`): a linear
probe on the frozen pretrained features.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..layers import is_classifier, task_head
from .base import Options, Prepared, Strategy, freeze_all, load_saved, save_trainable


@dataclasses.dataclass
class HeadOnlyOptions(Options):
    pass


def untie_head(model: Any) -> Any:
    """Give the output head its own weights if they are shared with the input embeddings."""
    import torch

    head, emb = model.get_output_embeddings(), model.get_input_embeddings()
    if head is not None and emb is not None and head.weight is emb.weight:
        head.weight = torch.nn.Parameter(emb.weight.detach().clone())
    # Recorded in the config too, so no later `tie_weights()` call shares them again.
    model.config.tie_word_embeddings = False
    text = model.config.get_text_config() if hasattr(model.config, "get_text_config") else None
    if text is not None:
        text.tie_word_embeddings = False
    return head


class TrainedPartStrategy(Strategy):
    """Strategies that train part of the model in place (head-only, freeze): a causal LM's head
    is untied first, everything starts frozen, and only what trained is saved and reloaded."""

    artifact = "weights"

    def untie_and_freeze(self, model: Any) -> None:
        if not is_classifier(model):
            untie_head(model)
        freeze_all(model)

    def save(self, model: Any, out: Path, state_dict: dict[str, Any] | None = None) -> None:
        save_trainable(model, out, {"strategy": self.name}, state_dict)

    def load_trained(self, base: Any, out: Path) -> Any:
        if not is_classifier(base):
            untie_head(base)
        load_saved(base, out)
        return base


class HeadOnlyStrategy(TrainedPartStrategy):
    name = "head-only"
    Options = HeadOnlyOptions
    summary = "train only the output head (a new classifier, or the LM head untied); saves the head"

    def prepare(self, model: Any) -> Prepared:
        self.untie_and_freeze(model)
        for _, p in task_head(model):
            p.requires_grad_(True)
        return Prepared(model)

    def export_peft(self, artifact: Path, out: Path) -> None:
        raise UserError("--format peft: PEFT cannot hold a trained head on its own: its "
                        "modules_to_save only rides along with an adapter that targets some "
                        "module, and head-only trains none; use --format safetensors (the base "
                        "with the trained head, a standalone model)")

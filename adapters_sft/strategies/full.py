"""full: every parameter trains; the whole model is saved as safetensors.

The reference point for quality and the most memory-hungry strategy (weights, gradients and
two Adam moments for every parameter).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from .base import Options, Prepared, Strategy


@dataclasses.dataclass
class FullOptions(Options):
    pass


class FullStrategy(Strategy):
    name = "full"
    Options = FullOptions
    artifact = "weights"
    summary = "train every parameter; saves the full model (safetensors)"

    def prepare(self, model: Any) -> Prepared:
        for p in model.parameters():
            p.requires_grad_(True)
        return Prepared(model)

    def save(self, model: Any, out: Path) -> None:
        model.save_pretrained(out, safe_serialization=True)

    def load_trained(self, base: Any, out: Path) -> Any:
        from safetensors.torch import load_file

        state = {}
        for shard in sorted(out.glob("*.safetensors")):
            state.update(load_file(str(shard)))
        # strict=False: tied heads are saved once; load_state_dict fills the shared tensor.
        missing, unexpected = base.load_state_dict(state, strict=False)
        if unexpected:
            from ..errors import UserError
            raise UserError(f"{out}: weights '{unexpected[0]}' do not fit the base model")
        return base

"""adapter: bottleneck adapters (Houlsby et al., 2019, arXiv:1902.00751; Pfeiffer et al.,
2020, arXiv:2005.00247).

A small residual MLP, x + up(act(down(x))), is inserted after a block's feed-forward output
(Pfeiffer) or after both its attention and feed-forward outputs (Houlsby). `up` starts at
zero, so the adapted model begins exactly equal to the base model. PEFT has no bottleneck
adapter and AdapterHub's package does not import with transformers 5, hence this module.
Because of the activation, an adapter cannot be folded into the base weights: it is saved on
its own (tensors + JSON config) and loaded back onto the base.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..layers import blocks, is_classifier, task_head
from ..fields import Range, option
from .base import Options, Prepared, Strategy, freeze_all, load_saved, save_trainable

_ACTIVATIONS = ("relu", "gelu", "silu", "tanh")


@dataclasses.dataclass
class AdapterOptions(Options):
    kind: str = option("pfeiffer", "houlsby (after attention and MLP) or pfeiffer (after MLP only)")
    reduction_factor: int = option(16, "bottleneck width = hidden size / reduction_factor", Range(1))
    activation: str = option("relu", "non-linearity inside the bottleneck: " + ", ".join(_ACTIVATIONS))

    def __post_init__(self) -> None:
        if self.kind not in ("houlsby", "pfeiffer"):
            raise UserError(f"strategy.kind: must be houlsby or pfeiffer, got '{self.kind}'")
        if self.activation not in _ACTIVATIONS:
            raise UserError(f"strategy.activation: must be one of {', '.join(_ACTIVATIONS)}, "
                            f"got '{self.activation}'")


def _bottleneck_classes() -> tuple[type, type]:
    """Built lazily so importing this module does not import torch."""
    import torch
    from torch import nn

    class Bottleneck(nn.Module):
        def __init__(self, hidden: int, size: int, activation: str) -> None:
            super().__init__()
            self.down = nn.Linear(hidden, size)
            self.act = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}[activation]()
            self.up = nn.Linear(size, hidden)
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.up(self.act(self.down(x.to(self.down.weight.dtype)))).to(x.dtype)

    class WithAdapter(nn.Module):
        """Runs the wrapped sub-layer, then the adapter on its (first) output."""

        def __init__(self, inner: nn.Module, adapter: nn.Module) -> None:
            super().__init__()
            self.inner = inner
            self.adapter = adapter

        def forward(self, *args: Any, **kwargs: Any) -> Any:
            out = self.inner(*args, **kwargs)
            if isinstance(out, tuple):
                return (self.adapter(out[0]), *out[1:])
            return self.adapter(out)

    return Bottleneck, WithAdapter


def _blocks(model: Any) -> list[Any]:
    """The transformer blocks (layers.blocks), which must have an `mlp` sub-module."""
    found = blocks(model)
    if not found or not all(hasattr(b, "mlp") for b in found):
        raise UserError("strategy.name: 'adapter' found no transformer blocks with an 'mlp' "
                        "sub-module in this model (Llama-style blocks); use 'lora' instead")
    return found


def inject(model: Any, opts: AdapterOptions) -> None:
    Bottleneck, WithAdapter = _bottleneck_classes()
    hidden = model.config.get_text_config().hidden_size
    size = max(1, hidden // opts.reduction_factor)
    where = ("self_attn", "mlp") if opts.kind == "houlsby" else ("mlp",)
    dtype = next(model.parameters()).dtype
    device = next(model.parameters()).device
    for block in _blocks(model):
        for attr in where:
            inner = getattr(block, attr, None)
            if inner is None:
                raise UserError(f"strategy.kind: 'houlsby' needs an attention sub-module "
                                f"'{attr}' in each block; use kind: pfeiffer")
            if not isinstance(inner, WithAdapter):
                adapter = Bottleneck(hidden, size, opts.activation).to(device=device, dtype=dtype)
                setattr(block, attr, WithAdapter(inner, adapter))


class AdapterStrategy(Strategy):
    name = "adapter"
    Options = AdapterOptions
    summary = "bottleneck adapters (Houlsby / Pfeiffer); saves adapter tensors + JSON"

    def prepare(self, model: Any) -> Prepared:
        freeze_all(model)
        inject(model, self.opts)
        if is_classifier(model):  # a new classifier head trains with the adapters
            for _, p in task_head(model):
                p.requires_grad_(True)
        return Prepared(model)

    def save(self, model: Any, out: Path, state_dict: dict[str, Any] | None = None) -> None:
        save_trainable(model, out, {"strategy": self.name, **dataclasses.asdict(self.opts)}, state_dict)

    def check_mergeable(self) -> None:
        raise UserError("strategy 'adapter': bottleneck adapters cannot be merged: each adds "
                        "down-projection -> activation -> up-projection layers, and a non-linear "
                        "layer cannot be folded into the existing weights; use the run directory "
                        "as it is (adapters-sft generate/chat RUN_DIR), or train with strategy "
                        "'lora', whose update is linear and merges exactly")

    def export_peft(self, artifact: Path, out: Path) -> None:
        raise UserError("--format peft: bottleneck adapters are not a PEFT adapter type (PEFT "
                        "has none), so vanilla PEFT cannot load them; use the run directory with "
                        "adapters-sft generate/chat, or train with strategy 'lora'")

    def load_trained(self, base: Any, out: Path) -> Any:
        config = (out / "config.json")
        if not config.is_file():
            raise UserError(f"{config}: missing; the run did not finish saving, train it again")
        import json

        saved = {k: v for k, v in json.loads(config.read_text()).items() if k != "strategy"}
        inject(base, AdapterOptions(**saved))
        load_saved(base, out)
        return base

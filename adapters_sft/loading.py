"""How a recipe's strategy and model are built, for training and for reading a run back alike:
the strategy from the registry, and the model's load options (dtype and device, the strategy's
own options such as 4-bit loading, dropout overrides). No weights load here."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .recipe import Recipe
    from .strategies.base import Strategy


def cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def build_strategy(recipe: Recipe) -> Strategy:
    from .registry import get_strategy

    return get_strategy(recipe.strategy.name)(recipe.strategy)


def model_load_kwargs(recipe: Recipe, strategy: Any) -> dict[str, Any]:
    import torch

    from . import knobs

    on_gpu = cuda()
    kwargs: dict[str, Any] = {}
    if recipe.dtype != "auto":
        kwargs["dtype"] = getattr(torch, recipe.dtype)
    elif on_gpu:
        kwargs["dtype"] = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        kwargs["dtype"] = torch.float32
    if on_gpu:
        kwargs["device_map"] = {"": 0}
    kwargs.update(strategy.load_options())
    dropout = knobs.split(recipe)[0].dropout
    if dropout is not None:
        from .models import load_config

        config = load_config(recipe.model, recipe.trust_remote_code)
        kwargs.update(knobs.dropout_overrides(config, dropout))
    return kwargs

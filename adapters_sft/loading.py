"""How a recipe's strategy and model are built, for training and for reading a run back alike:
the strategy from the registry, and the model's load options (dtype and device, the strategy's
own options such as 4-bit loading, dropout overrides). No weights load here."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .recipe import Recipe
    from .strategies.base import Strategy


from .hardware import attention, cuda  # noqa: E402,F401 - re-exported: callers ask loading


def build_strategy(recipe: Recipe) -> Strategy:
    from .registry import get_strategy

    return get_strategy(recipe.strategy.name)(recipe.strategy)


def weight_dtype(recipe: Recipe, cuda: bool, bf16: bool) -> str:
    """The dtype the model loads in: the recipe's, else bf16 on a CUDA GPU that has it (fp16 on
    one that has not), fp32 on a CPU. `plan` asks it for GPUs this machine does not have."""
    if recipe.dtype != "auto":
        return recipe.dtype
    if cuda:
        return "bfloat16" if bf16 else "float16"
    return "float32"


def model_load_kwargs(recipe: Recipe, strategy: Any) -> dict[str, Any]:
    import torch

    from .training import own_keys

    on_gpu = cuda()
    kwargs: dict[str, Any] = {
        "dtype": getattr(torch, weight_dtype(recipe, on_gpu, on_gpu and torch.cuda.is_bf16_supported()))}
    if on_gpu:
        from .processes import local_rank

        kwargs["device_map"] = {"": local_rank()}  # each process its own GPU
    if implementation := attention():
        kwargs["attn_implementation"] = implementation
    kwargs.update(strategy.load_options())
    if recipe.dtype != "auto":  # the recipe's dtype wins over a strategy's default compute dtype
        kwargs["dtype"] = getattr(torch, recipe.dtype)
        quant = kwargs.get("quantization_config")
        if getattr(quant, "load_in_4bit", False):
            quant.bnb_4bit_compute_dtype = kwargs["dtype"]
    dropout = recipe.training_split[0].dropout
    if dropout is not None:
        from .models import load_config

        config = load_config(recipe.model, recipe.trust_remote_code)
        kwargs.update(own_keys.dropout_overrides(config, dropout))
    return kwargs

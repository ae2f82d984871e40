"""The static terms of a plan: bytes that sit in memory for the whole run, counted on the real
model built on PyTorch's `meta` device from its config (shapes, no weights) with the recipe's
strategy applied by the strategy's own `prepare` (and PEFT's `get_peft_model`, as TRL does).

  base weights   every frozen parameter and buffer; bitsandbytes-quantized layers at their
                 storage size (below); the others in the dtype the strategy's prepare leaves
                 them (fp32 where qlora's `upcast_base` casts them as PEFT's
                 `prepare_model_for_kbit_training` does; else the compute dtype)
  trainable      what trains, in the dtype it trains in (PEFT keeps adapters on a bf16 model in
                 fp32; qlora casts its adapter to `adapter_dtype`), plus what gradual
                 unfreezing will thaw
  gradients      one per trainable number, in its dtype
  optimizer      AdamW (torch): two moments in the parameter's dtype and a 4-byte step per
                 tensor; bitsandbytes 8-bit AdamW: one byte per moment and a 4-byte scale per
                 256 numbers for tensors of 4096 numbers or more, fp32 moments for smaller ones
                 and for embeddings (the Trainer asks bitsandbytes to), and two shared
                 256-entry code tables

Quantized storage, as bitsandbytes 0.50 lays it out (checked against real layers in tests):
  NF4/FP4  n/2 bytes of packed pairs, a 64-number block's scale (fp32; with double
           quantization one byte, plus an fp32 scale per 256 blocks and a 256-entry table),
           and the 16-entry code
  int8     n bytes and one fp32 scale per output row
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

ADAM_8BIT = ("adamw_bnb_8bit", "adamw_8bit", "paged_adamw_8bit", "adam_8bit")
ADAM_32BIT_STATES = ("paged_adamw_32bit",)  # bitsandbytes keeps fp32 moments whatever the dtype
MIN_8BIT = 4096  # bitsandbytes optimizers keep smaller tensors in 32 bits
BLOCK_8BIT = 256


@dataclasses.dataclass
class Static:
    weights: int
    trainable: int
    gradients: int
    optimizer: int
    trainable_numbers: int
    optimizer_note: str
    model: Any  # the meta model with the strategy applied, for the activation trace
    quantized: set[int]  # ids of the weights stored in 4 or 8 bits
    bits: int | None     # 4 or 8 when quantized
    peft: bool
    sizes: dict[int, int] = dataclasses.field(default_factory=dict)  # parameter id -> bytes held


def quantized_bytes(numel: int, out_features: int, bits: int, double_quant: bool) -> int:
    if bits == 8:
        return numel + 4 * out_features
    blocks = math.ceil(numel / 64)
    scales = blocks + 4 * math.ceil(blocks / 256) + 4 * 256 + 4 if double_quant else 4 * blocks
    return math.ceil(numel / 2) + scales + 4 * 16


def optimizer_bytes(optim: str, trainable: list[Any], embeddings: set[int]) -> tuple[int, str]:
    """State bytes after the first step for `training.optim` over the trainable tensors.
    `embeddings`: ids of embedding weights, which the Trainer has bitsandbytes keep in 32 bits."""
    if optim in ADAM_8BIT:
        small = [p for p in trainable if p.numel() < MIN_8BIT or id(p) in embeddings]
        large = [p for p in trainable if not (p.numel() < MIN_8BIT or id(p) in embeddings)]
        total = 2 * 256 * 4 if large else 0  # the two quantization maps, shared
        total += sum(2 * p.numel() + 2 * 4 * math.ceil(p.numel() / BLOCK_8BIT) for p in large)
        return total + sum(2 * 4 * p.numel() for p in small), "8-bit AdamW (bitsandbytes)"
    if optim in ADAM_32BIT_STATES:
        return sum(2 * 4 * p.numel() for p in trainable), "AdamW, fp32 moments (bitsandbytes)"
    states = sum(2 * p.numel() * p.element_size() + 4 for p in trainable)
    if optim.startswith("adamw_torch") or optim in ("adamw_hf", "adamw_apex_fused"):
        return states, "AdamW: 2 moments per number"
    return states, f"'{optim}' estimated as AdamW (2 moments per number)"


def meta_model(config: Any, dtype: Any, auto_class: str = "AutoModelForCausalLM") -> Any:
    import torch
    import transformers

    with torch.device("meta"):
        return getattr(transformers, auto_class).from_config(config, dtype=dtype)


def quantized_modules(model: Any) -> set[str]:
    """Names of the linear layers bitsandbytes would quantize: every one but what transformers
    keeps in full precision (the output head, tied weights; its own get_keys_to_not_convert)."""
    import torch
    from transformers.quantizers.base import get_keys_to_not_convert

    keep = get_keys_to_not_convert(model)
    return {name for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear)
            and not any(name == k or name.startswith(k + ".") for k in keep)}


def static_terms(config: Any, strategy: Any, dtype: Any, adapter_dtype: Any, optim: str,
                 sharded: bool = False) -> Static:
    """Bytes of weights, trainable parameters, gradients and optimizer state for `strategy` on
    the model of `config` computing in `dtype`. `adapter_dtype` is what a quantized strategy
    trains its adapter in (None: as PEFT leaves it). `sharded`: a sharded run, whose 4-bit
    weights are stored in `dtype` and whose other weights qlora leaves in `dtype` (no fp32 cast)."""
    import torch

    quant = strategy.load_options().get("quantization_config")
    if quant is not None and sharded:
        quant.bnb_4bit_quant_storage = dtype  # what sharding.load_values sets
    model = meta_model(config, dtype)
    quantized = quantized_modules(model) if quant is not None else set()
    quantized_weights = {id(model.get_submodule(n).weight): model.get_submodule(n) for n in quantized}
    if quant is not None:  # as loaded, the model carries its quantization config (qlora reads it)
        import types

        model.hf_quantizer = types.SimpleNamespace(quantization_config=quant)
    prepared = strategy.prepare(model)
    model = prepared.model
    if prepared.peft_config is not None:
        from peft import get_peft_model

        model = get_peft_model(model, prepared.peft_config)
        _freeze_pefts_bookkeeping(model)
    if quant is not None:  # as loaded: 4/8-bit storage computing in `dtype`; the adapter cast
        for module in quantized_weights.values():
            module.weight.data = module.weight.data.to(dtype)
        for p in model.parameters():
            if p.requires_grad and adapter_dtype is not None:
                p.data = p.data.to(adapter_dtype)
    later = {id(p) for p in strategy.later_params()} if strategy.later_counted else set()
    weights = trainable_bytes = numbers = 0
    trainable: list[Any] = []
    sizes: dict[int, int] = {}
    for p in model.parameters():
        if id(p) in quantized_weights:
            module = quantized_weights[id(p)]
            sizes[id(p)] = quantized_bytes(p.numel(), module.out_features, 8 if quant.load_in_8bit else 4,
                                           quant.bnb_4bit_use_double_quant)
            weights += sizes[id(p)]
        elif p.requires_grad or id(p) in later:
            trainable.append(p)
            sizes[id(p)] = p.numel() * p.element_size()
            trainable_bytes += sizes[id(p)]
            numbers += p.numel()
        else:  # in the dtype prepare() left it: fp32 where qlora's upcast_base cast it
            sizes[id(p)] = p.numel() * p.element_size()
            weights += sizes[id(p)]
    weights += sum(b.numel() * b.element_size() for b in model.buffers())
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    optimizer, note = optimizer_bytes(optim, trainable, embeddings)
    return Static(weights, trainable_bytes, trainable_bytes, optimizer, numbers, note, model,
                  set(quantized_weights), None if quant is None else 8 if quant.load_in_8bit else 4,
                  prepared.peft_config is not None, sizes)


def _freeze_pefts_bookkeeping(model: Any) -> None:
    """PEFT layers name the parameters they keep but never train (`other_param_names`: AdaLoRA's
    `ranknum`). Built on the meta device they come out trainable (PEFT 0.21.2: each is made
    again on the base layer's device without its requires_grad=False); the real model has them
    frozen, and so must the plan."""
    import torch

    for module in model.modules():
        for attr in getattr(module, "other_param_names", ()):
            holder = getattr(module, attr, None)
            if isinstance(holder, torch.nn.ParameterDict):
                for p in holder.values():
                    p.requires_grad_(False)

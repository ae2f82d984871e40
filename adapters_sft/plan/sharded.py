"""What one process holds when the run is sharded (the recipe's `distributed.sharding`), from
the static terms of the whole model (static.py). An estimate from how the engines are
documented to work, not yet checked against a measured GPU run:

  fsdp    FSDP2 splits every parameter, its gradient and its optimizer state evenly across the
          processes. While a decoder layer runs it is gathered whole, and the next one is
          gathered ahead of use (FSDP2's implicit prefetch), so two layers are whole at a time;
          its gradients are whole until they are reduce-scattered. The root (embeddings, final
          norm, head: whatever no decoder layer holds) stays gathered from the forward pass
          through the backward pass (FSDP2 does not reshard the root after forward).
          cpu_offload keeps the split weights, gradients and optimizer state in CPU RAM.
  zero2   DeepSpeed splits optimizer state and gradients; the weights stay whole.
  zero3   ... and the weights, gathered a layer at a time as with FSDP.
          cpu_offload keeps the split optimizer state (zero3: and weights) in CPU RAM.
"""
from __future__ import annotations

import math
from typing import Any


def layers(model: Any, wrap: list[str]) -> list[Any]:
    """The decoder layers FSDP gathers one at a time: modules of the wrapped classes (the
    recipe's distributed.wrap, else the model's own _no_split_modules, as accelerate does)."""
    names = set(wrap) or set(getattr(model, "_no_split_modules", None) or [])
    if not names:  # a PEFT model: ask the model underneath
        base = getattr(model, "get_base_model", lambda: model)()
        names = set(getattr(base, "_no_split_modules", None) or [])
    return [m for m in model.modules() if type(m).__name__ in names]


def sharded_terms(terms: list[Any], static: Any, sharding: str, offload: bool,
                  processes: int, wrap: list[str]) -> list[Any]:
    """`terms` (one unsharded process's) as one process of `processes` holds them under
    `sharding`, plus what is gathered whole at the peak."""
    from .term import Term

    def split(term: Any, to_cpu: bool) -> Any:
        if to_cpu:
            return Term(term.name, 0, f"split across {processes} processes, kept in CPU RAM")
        return Term(term.name, math.ceil(term.bytes / processes),
                    f"1/{processes} of {term.bytes / 2**30:.2f} GiB (split across processes)")

    splits = {"fsdp": ("base weights", "trainable parameters", "gradients", "optimizer states"),
              "zero2": ("gradients", "optimizer states"),
              "zero3": ("base weights", "trainable parameters", "gradients", "optimizer states")}[sharding]
    offloaded = {"fsdp": splits, "zero2": ("optimizer states",),
                 "zero3": ("base weights", "trainable parameters", "optimizer states")}[sharding]
    out = [split(t, offload and t.name in offloaded) if t.name in splits else t for t in terms]
    if offload:
        ram = sum(math.ceil(t.bytes / processes) for t in terms if t.name in offloaded)
        out.append(Term("offloaded (CPU RAM)", 0, f"{ram / 2**30:.2f} GiB a process waits in CPU RAM, "
                                                  "not GPU memory"))
    if sharding == "zero2":
        return out
    blocks = layers(static.model, wrap)
    in_blocks = {id(p) for block in blocks for p in block.parameters()}
    root = sum(size for pid, size in static.sizes.items() if pid not in in_blocks)
    per_layer = [sum(static.sizes.get(id(p), 0) for p in block.parameters()) for block in blocks]
    trained_layer = max((sum(p.numel() * p.element_size() for p in block.parameters() if p.requires_grad)
                         for block in blocks), default=0)
    largest = max(per_layer, default=0)
    gathered = root + 2 * largest + trained_layer
    out.append(Term("gathered whole", gathered,
                    f"the root ({root / 2**30:.2f} GiB: embeddings, head), 2 of {len(blocks)} layers "
                    f"({largest / 2**30:.2f} GiB each) and one layer's gradients"))
    return out

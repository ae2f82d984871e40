"""llama-pro: block expansion (Wu et al. 2024, LLaMA Pro, arXiv:2401.02415).

The model's L blocks are cut into `new_blocks` equal groups; after each group a copy of the
group's last block is inserted, with its output projections (attention `o_proj`, MLP
`down_proj`, and their namesakes in other pre-norm decoders) set to zero. A pre-norm block adds
its sub-layers' outputs to the residual stream, so a copy whose outputs are zero passes its
input through unchanged: the expanded model starts exactly as the base. Only the new blocks
train (and, with `train_head`, the output head, untied from the embeddings as head-only does;
a classifier's new head always trains); the original blocks keep what the model knew.

Saved: the new blocks (and head) alone; loading expands the base the same way and puts them
back. `merge` gives the expanded model, whose config carries the new layer count, so the
safetensors and GGUF exports are ordinary models of L + new_blocks layers. Post-norm encoders
(BERT) normalise after the residual, where a zero output is not the identity: refused.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any

from ..errors import UserError
from ..fields import Range, option
from ..layers import blocks, is_classifier, task_head
from .base import Options, Prepared, freeze_all, load_saved, save_trainable
from .head_only import TrainedPartStrategy, untie_head

#: names of the last linear layer of a sub-layer that writes into the residual stream, in
#: pre-norm decoders (Llama, Mistral, Qwen: o_proj and down_proj; GPT-2: c_proj). A block with
#: fewer than two of them (attention and MLP) is refused: `dense`, BERT's name, is left out on
#: purpose. Tested on Llama and Qwen2 blocks (tests/strategies/test_llama_pro.py).
OUT_PROJECTIONS = ("o_proj", "down_proj", "c_proj", "out_proj", "dense_4h_to_h", "fc2", "w2", "wo")


@dataclasses.dataclass
class LlamaProOptions(Options):
    new_blocks: int = option(2, "blocks to add: one copy after every (layers / new_blocks) "
                                "original blocks; must divide the layer count", Range(1))
    train_head: bool = option(False, "also train the output head (untied from the embeddings)")


def insert_positions(layers: int, new: int) -> list[int]:
    """Indexes, in the expanded list, of the inserted copies (each after its group)."""
    group = layers // new
    return [(i + 1) * (group + 1) - 1 for i in range(new)]


def zero_out_projections(block: Any) -> list[str]:
    """Zero the sub-layers' output projections of `block` (weights and biases); their names."""
    import torch

    hit = []
    with torch.no_grad():
        for name, module in block.named_modules():
            if name.rsplit(".", 1)[-1] in OUT_PROJECTIONS and getattr(module, "weight", None) is not None:
                module.weight.zero_()
                if getattr(module, "bias", None) is not None:
                    module.bias.zero_()
                hit.append(name)
    return hit


def expand(model: Any, new: int) -> list[Any]:
    """Insert `new` zero-output copies into the model's blocks in place; the new blocks."""
    import torch

    originals = blocks(model)
    if not originals:
        raise UserError("strategy llama-pro: found no transformer blocks in this model")
    n = len(originals)
    if n % new:
        fits = [d for d in range(1, n + 1) if n % d == 0]
        raise UserError(f"strategy.new_blocks: {new} does not divide the model's {n} blocks into "
                        f"equal groups; use one of {fits}")
    where = next(name for name, m in model.named_modules() if isinstance(m, torch.nn.ModuleList)
                 and len(m) == n and all(a is b for a, b in zip(m, originals)))
    group, expanded, added = n // new, [], []
    # the copies share the model's config objects (a block's attention reads its implementation
    # and cache settings from them): a copied config would miss every later change to the model's
    shared = {id(c): c for c in (model.config, getattr(model.config, "get_text_config", lambda: None)())
              if c is not None}
    for i, block in enumerate(originals):
        expanded.append(block)
        if (i + 1) % group == 0:
            twin = copy.deepcopy(block, memo=dict(shared))
            zeroed = zero_out_projections(twin)
            if len(zeroed) < 2:
                raise UserError(f"strategy llama-pro: {type(block).__name__} has no attention and "
                                f"MLP output projections named {'/'.join(OUT_PROJECTIONS)}; block "
                                "expansion needs a pre-norm decoder (Llama, Qwen, Mistral, GPT-2), "
                                "not a post-norm encoder such as BERT; use strategy freeze")
            expanded.append(twin)
            added.append(twin)
    parent, _, attr = where.rpartition(".")
    setattr(model.get_submodule(parent), attr, torch.nn.ModuleList(expanded))
    _renumber(expanded)
    _grow_config(model.config, n, new)
    return added


def _renumber(layers: list[Any]) -> None:
    """Each attention module knows its index (the KV cache is per layer): set them in order."""
    for i, block in enumerate(layers):
        for module in block.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = i


def _grow_config(config: Any, n: int, new: int) -> None:
    """The layer count (the forward runs `layers[:num_hidden_layers]`), and any per-layer list
    (layer_types), with each copy taking its source's entry."""
    targets = [config]
    text = config.get_text_config() if hasattr(config, "get_text_config") else None
    if text is not None and text is not config:
        targets.append(text)
    group = n // new
    for cfg in targets:
        if getattr(cfg, "num_hidden_layers", None) == n:
            cfg.num_hidden_layers = n + new
        types = getattr(cfg, "layer_types", None)
        if isinstance(types, list) and len(types) == n:
            cfg.layer_types = [t for i, t in enumerate(types)
                               for t in ([t, t] if (i + 1) % group == 0 else [t])]


class LlamaProStrategy(TrainedPartStrategy):
    name = "llama-pro"
    Options = LlamaProOptions
    summary = "block expansion: insert zero-output copies of blocks and train only them; " \
              "merge gives the deeper model"

    def prepare(self, model: Any) -> Prepared:
        for block in self._expand(model):
            for p in block.parameters():
                p.requires_grad_(True)
        if is_classifier(model) or self.opts.train_head:
            for _, p in task_head(model):
                p.requires_grad_(True)
        return Prepared(model)

    def _expand(self, model: Any) -> list[Any]:
        """Everything frozen, the copies inserted (the head untied first if it will train)."""
        if self.opts.train_head and not is_classifier(model):
            untie_head(model)  # the trained head must not move the embeddings
        freeze_all(model)
        return expand(model, self.opts.new_blocks)

    def after_trainer(self, trainer: Any) -> None:
        from .unfreeze import inputs_require_grads

        inputs_require_grads(trainer)

    def save(self, model: Any, out: Any, state_dict: dict[str, Any] | None = None) -> None:
        save_trainable(model, out, {"strategy": self.name, "new_blocks": self.opts.new_blocks,
                                    "layers": len(blocks(model))}, state_dict)

    def load_trained(self, base: Any, out: Any) -> Any:
        self._expand(base)
        load_saved(base, out)
        return base

"""Model anatomy: the transformer blocks, what sits below them and what sits on top.

Found from the module tree alone, so it works for any architecture transformers builds (a
Llama's `model.layers`, a BERT's `encoder.layer`) and through a PEFT wrapper:

  blocks   the longest `ModuleList` of same-class modules that hold parameters
  bottom   parameters registered before the first block (embeddings)
  top      parameters registered after the last block (final norm, pooler, head)

A tied output head is the embedding matrix itself, so it counts as bottom. Freezing,
gradual unfreezing and layer-wise learning rates all read this one map.
"""
from __future__ import annotations

import dataclasses
from typing import Any

Named = list[tuple[str, Any]]  # (parameter name, parameter)


@dataclasses.dataclass
class Anatomy:
    bottom: Named
    blocks: list[Named]  # bottom block first
    top: Named

    def depth(self) -> dict[int, int]:
        """id(parameter) -> depth from the top: 0 for the top (head), 1 for the top block,
        ..., len(blocks) + 1 for the embeddings."""
        n = len(self.blocks)
        out = {id(p): 0 for _, p in self.top}
        out.update({id(p): n + 1 for _, p in self.bottom})
        for i, block in enumerate(self.blocks):
            out.update({id(p): n - i for _, p in block})
        return out


def blocks(model: Any) -> list[Any]:
    """The transformer blocks, bottom first; [] when the model has none we can recognise."""
    import torch

    best: list[Any] = []
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) > len(best) \
                and len({type(m) for m in module}) == 1 and any(True for _ in module.parameters()):
            best = list(module)
    return best


def anatomy(model: Any) -> Anatomy:
    blks = blocks(model)
    owner = {id(p): i for i, b in enumerate(blks) for p in b.parameters()}
    bottom: Named = []
    top: Named = []
    grouped: list[Named] = [[] for _ in blks]
    for name, p in model.named_parameters():
        if id(p) in owner:
            grouped[owner[id(p)]].append((name, p))
        elif any(grouped):
            top.append((name, p))
        else:
            bottom.append((name, p))
    return Anatomy(bottom, grouped, top)


def is_classifier(model: Any) -> bool:
    """A sequence-classification model (BertForSequenceClassification, LlamaFor...)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return type(base).__name__.endswith("ForSequenceClassification")


def task_head(model: Any) -> Named:
    """The task head: a classifier's new layers (everything outside the pretrained body:
    `classifier`, `score`), or a language model's output embeddings."""
    if is_classifier(model):
        prefix = model.base_model_prefix + "."
        return [(n, p) for n, p in model.named_parameters() if not n.startswith(prefix)]
    head = model.get_output_embeddings()
    return [(f"lm_head.{n}", p) for n, p in head.named_parameters()] if head is not None else []

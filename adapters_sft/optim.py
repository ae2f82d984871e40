"""The optimizer, when a run needs more than the Trainer's single learning rate.

Three things need their own parameter groups:
  layer-wise learning rates   block i gets lr * decay ** (depth from the top); the head (and
                              anything above the top block) gets the full lr, the embeddings
                              one step below the bottom block (layers.Anatomy.depth)
  LoRA+                       the strategy scales lora_B's rate by a ratio (Hayou et al. 2024)
  gradual unfreezing          parameters that start frozen must already be in the optimizer,
                              or unfreezing them later would change nothing; frozen, they get
                              no gradient, and AdamW skips a parameter without a gradient

The optimizer class and its arguments are the ones `training.optim` would give (Trainer's own
`get_optimizer_cls_and_kwargs`), and weight decay skips biases and norms as Trainer does; only
the grouping is ours. Runs that need none of the three keep Trainer's own optimizer.
"""
from __future__ import annotations

from typing import Any, Callable


def param_groups(model: Any, lr: float, weight_decay: float, layer_decay: float | None = None,
                 scale: Callable[[str], float] = lambda name: 1.0,
                 later: list[Any] = ()) -> list[dict[str, Any]]:
    """Parameter groups: one per (learning rate, weight decay) pair, highest rate first (the
    Trainer logs the first group's rate as `learning_rate`, so the logs show the head's).
    Holds every trainable parameter plus `later` (frozen now, unfrozen during training)."""
    from transformers import Trainer

    from .layers import anatomy

    depth = anatomy(model).depth() if layer_decay is not None else {}
    decayed = set(Trainer.get_decay_parameter_names(None, model))
    later_ids = {id(p) for p in later}
    groups: dict[tuple[float, float], list[Any]] = {}
    for name, p in model.named_parameters():
        if not (p.requires_grad or id(p) in later_ids):
            continue
        rate = lr * scale(name) * (layer_decay ** depth.get(id(p), 0) if layer_decay is not None else 1.0)
        groups.setdefault((rate, weight_decay if name in decayed else 0.0), []).append(p)
    return [{"params": ps, "lr": rate, "weight_decay": wd}
            for (rate, wd), ps in sorted(groups.items(), key=lambda kv: -kv[0][0])]


def install(trainer: Any, layer_decay: float | None, scale: Callable[[str], float],
            later: list[Any]) -> Any:
    """Give `trainer` an optimizer with our groups; Trainer builds the scheduler around it."""
    from transformers import Trainer

    args = trainer.args
    cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(args, trainer.model)
    kwargs = {k: v for k, v in kwargs.items() if k not in ("lr", "weight_decay")}
    groups = param_groups(trainer.model, args.learning_rate, args.weight_decay, layer_decay, scale, later)
    trainer.optimizer = cls(groups, **kwargs)
    return trainer.optimizer

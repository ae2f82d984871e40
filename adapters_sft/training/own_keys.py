"""Training keys of our own, next to the SFTConfig / TrainingArguments ones under `training:`.

Most textbook knobs already are TrainingArguments fields and pass straight through:
warmup_steps (a float below 1 is a ratio of the run), max_grad_norm, weight_decay,
label_smoothing_factor, load_best_model_at_end, metric_for_best_model, and TRL's
activation_offloading. Four are not:

  dropout                  model dropout: every dropout probability in the model's config
  layer_lr_decay           layer-wise learning rates (optim.py)
  early_stopping_patience  stop after N evaluations without improvement, keep the best
  mlp_tile_tokens          each layer's MLP in tiles of N tokens (tiled_mlp.py)

Asking for the best checkpoint (either of the last two keys' relatives) fills in what the
Trainer needs for it, so one key is enough: evaluation and saving on the same schedule, the
best model loaded at the end, and a metric (macro F1 for classification, loss otherwise).
The checkpoints this writes are removed after training unless `save_strategy` was set.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from ..errors import UserError
from ..fields import Range, build, option

if TYPE_CHECKING:
    from ..recipe import Recipe


@dataclasses.dataclass
class OwnKeys:
    dropout: float | None = option(None, "model dropout (hidden, attention, classifier), 0 to 1; "
                                         "unset keeps the checkpoint's", Range(0, 1, high_open=True))
    layer_lr_decay: float | None = option(None, "block i trains at lr * decay ** (depth from the "
                                                "top); the head keeps the full lr",
                                          Range(0, 1, low_open=True))
    early_stopping_patience: int | None = option(None, "stop after N evaluations without "
                                                       "improvement of metric_for_best_model", Range(1))
    mlp_tile_tokens: int | None = option(None, "compute each decoder layer's MLP in tiles of this many "
                                               "tokens, keeping only its input for the backward "
                                               "pass (long rows); unset: in one piece", Range(1))


KEYS = tuple(f.name for f in dataclasses.fields(OwnKeys))


def split(recipe: Recipe) -> tuple[OwnKeys, dict[str, Any]]:
    """(our knobs, the rest of `training:` for the Trainer's config class)."""
    ours = {k: v for k, v in recipe.training.items() if k in KEYS}
    rest = {k: v for k, v in recipe.training.items() if k not in KEYS}
    return build(OwnKeys, ours, "training", recipe.where), rest


def config_defaults(recipe: Recipe, ours: OwnKeys, has_eval: bool) -> dict[str, Any]:
    """Defaults the knobs imply for the Trainer's config; the user's own keys win."""
    from ..registry import get_task

    user = recipe.training
    values: dict[str, Any] = {}
    task = get_task(recipe.task)
    if task.eval_every_epoch and has_eval:
        values["eval_strategy"] = "epoch"
    best = ours.early_stopping_patience is not None or user.get("load_best_model_at_end")
    if not best:
        return values
    if not has_eval:
        key = "early_stopping_patience" if ours.early_stopping_patience is not None else "load_best_model_at_end"
        raise UserError(f"{recipe.where('training.' + key)}training.{key}: needs held-out data to "
                        "pick the best checkpoint; set data.eval=PATH or data.val_size")
    schedule = user.get("eval_strategy", values.get("eval_strategy", "steps"))
    values.update(eval_strategy=schedule, save_strategy=schedule, load_best_model_at_end=True,
                  metric_for_best_model=task.best_metric)
    if schedule == "steps":  # saves must land on evaluations, or there is no best to keep
        every = user.get("eval_steps", user.get("logging_steps", 5))
        values.update(eval_steps=every, save_steps=every)
    return values


def dropout_overrides(config: Any, p: float | None) -> dict[str, Any]:
    """`from_pretrained` keyword arguments setting every dropout probability the model's
    config has (hidden_dropout_prob, attention_dropout, classifier_dropout, resid_pdrop, ...)."""
    if p is None:
        return {}
    return {k: p for k, v in config.to_dict().items()
            if ("dropout" in k or k.endswith("_pdrop")) and (v is None or type(v) in (int, float))}


def callbacks(ours: OwnKeys) -> list[Any]:
    if ours.early_stopping_patience is None:
        return []
    from transformers import EarlyStoppingCallback

    return [EarlyStoppingCallback(early_stopping_patience=ours.early_stopping_patience)]


def install_optimizer(trainer: Any, ours: OwnKeys, strategy: Any) -> None:
    """Our parameter groups where the run needs them (optim.py); otherwise Trainer's own."""
    from .. import optim

    if strategy.builds_optimizer():  # BAdam: its groups are its own (pre-flight refused ours)
        return
    scale, later = strategy.lr_scale(), strategy.later_params()
    if ours.layer_lr_decay is None and scale is None and not later:
        return
    from .low_rank import family

    if family(trainer.args.optim):  # pre-flight refuses ours; a third party's later_params too
        chosen = getattr(trainer.args.optim, "value", trainer.args.optim)
        raise UserError(f"training.optim: {chosen} builds its own parameter groups, so strategy "
                        f"{strategy.name}'s cannot apply; use another optimizer")
    optim.install(trainer, ours.layer_lr_decay, scale or (lambda name: 1.0), later)

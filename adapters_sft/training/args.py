"""The Trainer's config for a recipe: the run's task names the class (TRL's SFTConfig for
`sft`, transformers' TrainingArguments for `classification`), our defaults fill it, the user's
`training:` keys override them. Unknown or mistyped keys are UserErrors naming file:line.

Defaults we choose over TRL's (a recipe's `training:` keys override them):
  gradient_checkpointing  off on CPU: it trades compute for memory, and small CPU runs are
                          compute-bound (TRL turns it on everywhere)
  bf16                    only on a CUDA GPU that supports it (TRL asks for it everywhere)
  logging_steps           5, so short runs still log
  save_strategy           no: resumable checkpoints follow the recipe's `checkpoint:` section
                          (checkpoints.py: what trained, optimizer, RNG; every 10 minutes by
                          default); training.save_strategy=steps also keeps them after the run
  disable_tqdm            False: the progress bar stays on even when library logs are quiet
  use_cpu                 True in a multi-process run without CUDA: accelerate then joins the
                          processes over gloo (otherwise each would train alone)
  fsdp, deepspeed         from the recipe's `distributed:` section (sharding.py); under FSDP,
                          gradient_checkpointing becomes FSDP's own activation checkpointing
  activation_offloading   TRL's (activations to host memory and back); off on a machine with
                          no accelerator, where they are in host memory already (and TRL's
                          offloading fails to start)
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UserError

if TYPE_CHECKING:
    from ..recipe import Recipe


def training_args(recipe: Recipe, output_dir: Path | None = None, has_eval: bool = False) -> Any:
    """The Trainer's config from the recipe, writing checkpoints into `output_dir` (by default
    the run's checkpoints/ folder). Our own keys (own_keys.py) are taken out first and fill in the
    defaults they imply; the task adds its own values last."""
    import torch

    from . import low_rank, own_keys, trainer_keys
    from ..loading import cuda
    from ..registry import get_task
    from ..rundir import CHECKPOINTS

    task = get_task(recipe.task)
    config_cls = task.config_class()
    ours, training = recipe.training_split
    trainer_keys.check_recipe(recipe, config_cls, has_eval)
    from ..processes import world_size

    on_gpu = cuda()
    # several CPU processes: accelerate joins them (gloo) only when told the run is CPU-only
    spread = {"use_cpu": True} if world_size() > 1 and not on_gpu else {}
    values: dict[str, Any] = {**spread,
        "gradient_checkpointing": on_gpu, "bf16": on_gpu and torch.cuda.is_bf16_supported(),
        "logging_steps": 5, "save_strategy": "no", "run_name": recipe.name,  # what trackers call it
        "dataloader_pin_memory": on_gpu, "disable_tqdm": False,
        **own_keys.config_defaults(recipe, ours, has_eval), **low_rank.defaults(training), **training,
        "output_dir": str(output_dir or Path(recipe.output_dir) / CHECKPOINTS), "seed": recipe.seed,
        "save_total_limit": None,  # checkpoints.rotate keeps checkpoint.keep, after marking
        "restore_callback_states_from_checkpoint": True,  # early stopping's patience, on resume
        **task.config_values(recipe, training),
    }
    from ..sharding import trainer_values

    values.update(trainer_values(recipe, bool(values.get("gradient_checkpointing"))))
    if values.get("activation_offloading") and torch.accelerator.current_accelerator() is None:
        values["activation_offloading"] = False  # nothing to move off a CPU (TRL's needs a device)
    try:
        return config_cls(**values)
    except (ValueError, TypeError) as exc:
        reason = str(exc).strip().splitlines()[0][:300]
        keys = ", ".join(f"training.{k}" for k in recipe.training) or "its defaults"
        raise UserError(f"{recipe.where('training')}training: {config_cls.__name__} refused the "
                        f"settings ({keys}): {reason}") from None

"""The recipe's `distributed:` section: how a run spread over several processes holds its model.

  none   data-parallel (DDP): every process holds the whole model and its optimizer state;
         gradients are averaged. The default, and what `train --nproc N` does without sharding.
  fsdp   PyTorch's FSDP2 through accelerate (the Trainer's `fsdp` / `fsdp_config`): weights,
         gradients and optimizer state are split across the processes, and each decoder layer
         is gathered whole only while it runs. For models that do not fit one GPU.
  zero2  DeepSpeed ZeRO stage 2: optimizer state and gradients split, weights whole.
  zero3  DeepSpeed ZeRO stage 3: weights split too.

This module is the one owner of the section: its options, what cannot work (refused before any
process starts), the Trainer keys it becomes, what it changes about loading, the check that
accelerate really turned it on, and the gathering of sharded weights for a save.

QLoRA + FSDP (bitsandbytes' FSDP-QLoRA guide): FSDP shards only floating-point tensors of one
dtype, so the 4-bit weights are stored in the compute dtype (`bnb_4bit_quant_storage`), and the
model loads on the CPU and is sharded from there (`cpu_ram_efficient_loading`), so no GPU ever
holds the whole model. 8-bit (LLM.int8) weights cannot be sharded.
"""
from __future__ import annotations

import dataclasses
import importlib.util
from typing import TYPE_CHECKING, Any

from .errors import UserError
from .fields import option

if TYPE_CHECKING:
    from .recipe import Recipe

SHARDINGS = ("none", "fsdp", "zero2", "zero3")


@dataclasses.dataclass
class DistributedSection:
    sharding: str = option("none", "none (data-parallel: each process holds the whole model), "
                                   "fsdp (FSDP2: weights, gradients and optimizer state split "
                                   "across processes), zero2 or zero3 (DeepSpeed ZeRO); "
                                   "docs/distributed.md")
    cpu_offload: bool = option(False, "keep the split weights and optimizer state in CPU RAM "
                                      "between uses (fsdp: all of them; zero2: the optimizer; "
                                      "zero3: optimizer and weights): less GPU memory, slower")
    wrap: list = option([], "fsdp: layer classes gathered one at a time (e.g. [LlamaDecoderLayer]); "
                            "empty: the model's own decoder-layer class")

    def __post_init__(self) -> None:
        from .errors import did_you_mean

        if self.sharding not in SHARDINGS:
            raise UserError(f"distributed.sharding: must be one of {', '.join(SHARDINGS)}, got "
                            f"'{self.sharding}'{did_you_mean(str(self.sharding), SHARDINGS)}")
        if self.cpu_offload and self.sharding == "none":
            raise UserError("distributed.cpu_offload: offloads split state, so it needs "
                            "distributed.sharding fsdp, zero2 or zero3; set one or remove it")
        if self.wrap and self.sharding != "fsdp":
            raise UserError("distributed.wrap: names FSDP's layer classes; set "
                            "distributed.sharding=fsdp or remove it")
        if not all(isinstance(name, str) and name for name in self.wrap):
            raise UserError(f"distributed.wrap: a list of class names, got {self.wrap!r}")


def sharded(recipe: Recipe) -> bool:
    return recipe.distributed.sharding != "none"


def can_shard_here() -> bool:
    """accelerate turns FSDP and DeepSpeed on for GPU processes only (its CPU processes train
    unsharded). The CPU tests lift this gate together with accelerate's (tests/shard_on_cpu.py)."""
    import torch

    return torch.cuda.is_available()


def check(recipe: Recipe) -> None:
    """What cannot work, in one line, before any process starts or any weight loads."""
    d = recipe.distributed
    if d.sharding == "none":
        return
    at = recipe.where("distributed.sharding")
    key = f"{at}distributed.sharding: {d.sharding}"
    if not can_shard_here():
        raise UserError(f"{key} needs CUDA GPUs: accelerate shards only GPU processes (on a CPU "
                        "the run would train unsharded); use distributed.sharding=none")
    if getattr(recipe.strategy, "bits", None) == 8 and d.sharding in ("fsdp", "zero3"):
        raise UserError(f"{key} splits the weights, and bitsandbytes' 8-bit weights cannot be "
                        "split; use strategy.bits=4 (FSDP-QLoRA), or distributed.sharding=zero2")
    if d.sharding.startswith("zero") and importlib.util.find_spec("deepspeed") is None:
        raise UserError(f"{key} needs DeepSpeed: run 'pip install deepspeed' on the GPU machine, "
                        "or use distributed.sharding=fsdp")


def trainer_values(recipe: Recipe, checkpointing: bool) -> dict[str, Any]:
    """The Trainer keys for the section. `checkpointing`: whether activations are recomputed
    (training.gradient_checkpointing); under FSDP that is FSDP's own activation checkpointing,
    which transformers asks for instead of the model's (the model's adds an all-gather)."""
    d = recipe.distributed
    if d.sharding == "fsdp":
        config: dict[str, Any] = {
            "version": 2, "reshard_after_forward": True, "activation_checkpointing": checkpointing,
            # every process but the first loads on the meta device; the first one's CPU copy
            # is split from there, so no GPU ever holds the whole model
            "cpu_ram_efficient_loading": True, "state_dict_type": "FULL_STATE_DICT"}
        if d.wrap:
            config["transformer_layer_cls_to_wrap"] = list(d.wrap)
        return {"fsdp": "full_shard auto_wrap" + (" offload" if d.cpu_offload else ""),
                "fsdp_config": config, "gradient_checkpointing": False}
    if d.sharding.startswith("zero"):
        return {"deepspeed": deepspeed_config(int(d.sharding[-1]), d.cpu_offload)}
    return {}


def deepspeed_config(stage: int, offload: bool) -> dict[str, Any]:
    """A ZeRO config whose "auto" values the Trainer fills from its own arguments (batch
    sizes, accumulation, clipping, bf16/fp16), so the two can never disagree."""
    zero: dict[str, Any] = {"stage": stage, "overlap_comm": True, "contiguous_gradients": True}
    if offload:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
        if stage == 3:
            zero["offload_param"] = {"device": "cpu", "pin_memory": True}
    if stage == 3:  # a save gathers the split weights into one 16-bit state dict
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    return {"zero_optimization": zero, "bf16": {"enabled": "auto"}, "fp16": {"enabled": "auto"},
            "train_micro_batch_size_per_gpu": "auto", "train_batch_size": "auto",
            "gradient_accumulation_steps": "auto", "gradient_clipping": "auto"}


def load_values(recipe: Recipe, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Model load options under sharding: no device map (the first process's CPU copy is split
    by FSDP; DeepSpeed places the weights itself), and 4-bit weights stored in the compute
    dtype so FSDP can split them with everything else."""
    if not sharded(recipe):
        return kwargs
    kwargs = {k: v for k, v in kwargs.items() if k != "device_map"}
    quant = kwargs.get("quantization_config")
    if quant is not None and getattr(quant, "load_in_4bit", False):
        quant.bnb_4bit_quant_storage = kwargs.get("dtype") or quant.bnb_4bit_compute_dtype
    return kwargs


def verify(trainer: Any, recipe: Recipe) -> None:
    """The Trainer really shards as asked: accelerate turns FSDP and DeepSpeed on only for
    processes it can shard, and would otherwise train silently unsharded."""
    d = recipe.distributed
    on = {"fsdp": getattr(trainer, "is_fsdp_enabled", False),
          "zero2": getattr(trainer, "is_deepspeed_enabled", False),
          "zero3": getattr(trainer, "is_deepspeed_enabled", False)}
    if d.sharding != "none" and not on[d.sharding]:
        raise UserError(f"{recipe.where('distributed.sharding')}distributed.sharding: {d.sharding} "
                        "was not turned on by accelerate (it shards only CUDA processes started by "
                        "a launcher: train --nproc N); use distributed.sharding=none")


def full_state_dict(trainer: Any) -> dict[str, Any] | None:
    """The whole model's weights gathered from every process, on the CPU, or None when the
    model is not sharded (its own parameters are whole). Every process must call it."""
    if not (getattr(trainer, "is_fsdp_enabled", False) or getattr(trainer, "is_deepspeed_enabled", False)):
        return None
    return trainer.accelerator.get_state_dict(trainer.model)


def check_recipe(recipe: Recipe, processes: int, launching: bool = False) -> None:
    """What cannot be spread over several processes, refused in one line. `launching`: the
    command that is about to start the processes asks (rather than one of them)."""
    from .processes import launched

    check(recipe)
    if sharded(recipe) and not (launching or launched()):
        raise UserError(f"{recipe.where('distributed.sharding')}distributed.sharding: "
                        f"{recipe.distributed.sharding} runs in processes started by a launcher; "
                        "use 'adapters-sft train RECIPE --nproc N' (or torchrun)")

    if sharded(recipe) and recipe.training.get("mlp_tile_tokens") is not None:
        raise UserError(f"{recipe.where('training.mlp_tile_tokens')}training.mlp_tile_tokens: the "
                        "tiled MLP is proven in one process and under data-parallel --nproc, not "
                        f"with distributed.sharding={recipe.distributed.sharding}; unset one of them")
    if processes > 1 and getattr(recipe.strategy, "unfreeze_every", None) is not None:
        raise UserError(f"{recipe.where('strategy.unfreeze_every')}strategy.unfreeze_every: gradual "
                        "unfreezing thaws parameters that data-parallel training did not register, "
                        "so the processes would drift apart; train in one process, or unset it")

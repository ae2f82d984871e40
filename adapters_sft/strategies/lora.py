"""lora: low-rank adapters through PEFT (Hu et al., 2021, arXiv:2106.09685).

Each targeted linear layer W gets a trainable update (alpha / r) * B @ A with A: r x d_in and
B: d_out x r, B zero-initialised so training starts from the base model. We only build the
`LoraConfig`; TRL's SFTTrainer applies it (for classification, we do with get_peft_model,
and PEFT's SEQ_CLS task trains and saves the new classifier with the adapter). The saved
adapter is a plain PEFT folder.

Variants, all PEFT's own: DoRA (use_dora, Liu et al. 2024), rsLoRA (use_rslora: alpha/sqrt(r)
scaling), LoRA+ (loraplus_lr_ratio: B learns that many times faster than A; our optimizer
groups, optim.py), initialisations (init: gaussian, orthogonal, pissa, pissa_niter_K, olora),
and modules_to_save (fully trained extra modules, e.g. a head or embeddings). PiSSA and OLoRA
move the principal part of each base weight into the adapter, so the adapter is saved
converted (PEFT's path_initial_model_for_weight_conversion) to apply to the untouched base.
Saving, loading, merging and the PEFT export are peft_method.PeftStrategy's.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..fields import Range, option
from .base import Options
from .peft_method import PeftStrategy, task_type


@dataclasses.dataclass
class LoraOptions(Options):
    r: int = option(16, "rank of the update matrices", Range(1))
    alpha: float = option(32, "scaling numerator: the update is scaled by alpha / r", Range(0, low_open=True))
    dropout: float = option(0.05, "dropout on the adapter input, 0 to 1", Range(0, 1, high_open=True))
    target_modules: str | list[str] = option(
        "all-linear", "module names to adapt, or 'all-linear' for every linear layer but the head")
    bias: str = option("none", "train biases too: none, all or lora_only")
    use_dora: bool = option(False, "DoRA: learn a magnitude vector beside the low-rank direction")
    use_rslora: bool = option(False, "rsLoRA: scale by alpha / sqrt(r) instead of alpha / r")
    init: str = option("default", "adapter init: default (B = 0), gaussian, orthogonal, pissa, "
                                  "pissa_niter_K (fast SVD), olora")
    loraplus_lr_ratio: float | None = option(None, "LoRA+: lora_B's learning rate over lora_A's "
                                                   "(e.g. 16); unset for one rate", Range(0, low_open=True))
    modules_to_save: list[str] = option([], "modules trained in full and saved with the adapter, "
                                            "e.g. [lm_head] or [embed_tokens]")

    def __post_init__(self) -> None:
        if self.bias not in ("none", "all", "lora_only"):
            raise UserError(f"strategy.bias: must be none, all or lora_only, got '{self.bias}'")
        if isinstance(self.target_modules, list) and not self.target_modules:
            raise UserError("strategy.target_modules: empty list; name modules or use 'all-linear'")
        if self.init not in INITS and not re.fullmatch(r"pissa_niter_\d+", self.init):
            raise UserError(f"strategy.init: must be one of {', '.join(INITS)} or pissa_niter_K, "
                            f"got '{self.init}'")

    @property
    def rewrites_base(self) -> bool:
        """PiSSA and OLoRA subtract the adapter's initial value from the base weights."""
        return self.init.startswith("pissa") or self.init == "olora"


INITS = ("default", "gaussian", "orthogonal", "pissa", "olora")


class LoraStrategy(PeftStrategy):
    name = "lora"
    Options = LoraOptions
    summary = "PEFT LoRA adapters on the linear layers; saves a PEFT adapter"

    _init_dir: Path | None = None

    def peft_config(self, model: Any = None) -> Any:
        from peft import LoraConfig

        o = self.opts
        return LoraConfig(r=o.r, lora_alpha=o.alpha, lora_dropout=o.dropout, bias=o.bias,
                          target_modules=o.target_modules, use_dora=o.use_dora,
                          use_rslora=o.use_rslora, modules_to_save=o.modules_to_save or None,
                          init_lora_weights=True if o.init == "default" else o.init,
                          task_type=task_type(model))

    def after_trainer(self, trainer: Any) -> None:
        if self.opts.rewrites_base:  # keep the initial adapter, to save the trained one converted
            import tempfile

            model = trainer.model
            self._init_dir = Path(tempfile.mkdtemp(prefix="adapters-sft-lora-init-"))
            model.peft_config["default"].init_lora_weights = True  # the saved one loads as plain LoRA
            model.save_pretrained(self._init_dir, safe_serialization=True)

    def lr_scale(self) -> Any:
        ratio = self.opts.loraplus_lr_ratio
        if ratio is None:
            return None
        return lambda name: ratio if "lora_B" in name or "lora_embedding_B" in name else 1.0

    def save(self, model: Any, out: Path, state_dict: dict[str, Any] | None = None) -> None:
        if self._init_dir is None:
            super().save(model, out, state_dict)
            return
        import shutil

        try:
            model.save_pretrained(out, safe_serialization=True, state_dict=state_dict,
                                  path_initial_model_for_weight_conversion=str(self._init_dir))
        finally:
            shutil.rmtree(self._init_dir, ignore_errors=True)

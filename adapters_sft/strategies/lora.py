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
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from ..errors import UserError, did_you_mean, first_line
from ..layers import is_classifier
from ..typed import Range, option
from .base import Options, Prepared, Strategy


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


class LoraStrategy(Strategy):
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
                          task_type="SEQ_CLS" if model is not None and is_classifier(model) else "CAUSAL_LM")

    def prepare(self, model: Any) -> Prepared:
        check_module_names(model, self.opts)
        return Prepared(model, self.peft_config(model))

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

    def save(self, model: Any, out: Path) -> None:
        if self._init_dir is None:
            model.save_pretrained(out, safe_serialization=True)
            return
        import shutil

        try:
            model.save_pretrained(out, safe_serialization=True,
                                  path_initial_model_for_weight_conversion=str(self._init_dir))
        finally:
            shutil.rmtree(self._init_dir, ignore_errors=True)

    def load_trained(self, base: Any, out: Path) -> Any:
        return load_adapter(base, out)

    def merge(self, model: Any) -> Any:
        return model.merge_and_unload()

    def export_peft(self, artifact: Path, out: Path) -> None:
        import shutil

        load_adapter_files(artifact)
        shutil.copytree(artifact, out, dirs_exist_ok=True)


def check_module_names(model: Any, opts: LoraOptions) -> None:
    """Every module the options name exists in the model: PEFT raises deep in SFTTrainer for
    an unmatched target, and silently trains without an unmatched modules_to_save. Names
    match as PEFT matches them: a list entry is a name suffix, a string a full regex."""
    names = [name for name, _ in model.named_modules()]
    leaves = sorted({name.rsplit(".", 1)[-1] for name in names if name})
    linear = sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules()
                     if type(m).__name__ == "Linear" and name})
    targets = opts.target_modules
    if isinstance(targets, str) and targets != "all-linear":
        if not any(re.fullmatch(targets, name) for name in names):
            raise UserError(f"strategy.target_modules: the regex '{targets}' matches no module name "
                            f"of the model; name modules in a list, e.g. [{', '.join(linear[:2])}]")
    wanted = [("target_modules", t) for t in (targets if isinstance(targets, list) else [])]
    for key, name in [*wanted, *(("modules_to_save", m) for m in opts.modules_to_save)]:
        if not any(n == name or n.endswith("." + name) for n in names):
            raise UserError(f"strategy.{key}: '{name}' matches no module of the model"
                            f"{did_you_mean(name, leaves)}; its linear layers: {', '.join(linear)}")


def load_adapter(base: Any, out: Path) -> Any:
    """`PeftModel.from_pretrained`, with its failures said in one line: a missing or corrupt
    adapter file, or a base model whose shapes no longer match the adapter."""
    from peft import PeftModel

    weights = load_adapter_files(out)
    try:
        return PeftModel.from_pretrained(base, out)
    except RuntimeError as exc:  # torch: size mismatch while loading the state dict
        shape = next((ln.strip() for ln in str(exc).splitlines() if "size mismatch" in ln), "")
        raise UserError(f"{weights}: does not fit the base model ({shape or first_line(exc)}); "
                        "was the run trained on another model, or has the base changed?") from None
    except Exception as exc:  # safetensors: a truncated or corrupt file
        if "safetensor" in type(exc).__module__.lower() or "header" in str(exc).lower():
            raise UserError(f"{weights}: unreadable ({first_line(exc)}); the file is damaged, "
                            "train the run again or restore it") from None
        raise


def load_adapter_files(out: Path) -> Path:
    """The adapter's weights file, after checking both PEFT files are there."""
    weights = out / "adapter_model.safetensors"
    if not (out / "adapter_config.json").is_file() or not weights.is_file():
        missing = "adapter_config.json" if not (out / "adapter_config.json").is_file() else weights.name
        raise UserError(f"{out}: no {missing}; the run did not finish saving, train it again")
    return weights

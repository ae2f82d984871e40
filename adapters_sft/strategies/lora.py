"""lora: low-rank adapters through PEFT (Hu et al., 2021, arXiv:2106.09685).

Each targeted linear layer W gets a trainable update (alpha / r) * B @ A with A: r x d_in and
B: d_out x r, B zero-initialised so training starts from the base model. We only build the
`LoraConfig`; TRL's SFTTrainer applies it. The saved adapter is a plain PEFT folder.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..typed import option
from .base import Options, Prepared, Strategy


@dataclasses.dataclass
class LoraOptions(Options):
    r: int = option(16, "rank of the update matrices")
    alpha: float = option(32, "scaling numerator: the update is scaled by alpha / r")
    dropout: float = option(0.05, "dropout on the adapter input, 0 to 1")
    target_modules: str | list[str] = option(
        "all-linear", "module names to adapt, or 'all-linear' for every linear layer but the head")
    bias: str = option("none", "train biases too: none, all or lora_only")

    def __post_init__(self) -> None:
        if self.r < 1:
            raise UserError(f"strategy.r: must be a positive integer, got {self.r}")
        if self.alpha <= 0:
            raise UserError(f"strategy.alpha: must be positive, got {self.alpha}")
        if not 0 <= self.dropout < 1:
            raise UserError(f"strategy.dropout: must be in [0, 1), got {self.dropout}")
        if self.bias not in ("none", "all", "lora_only"):
            raise UserError(f"strategy.bias: must be none, all or lora_only, got '{self.bias}'")
        if isinstance(self.target_modules, list) and not self.target_modules:
            raise UserError("strategy.target_modules: empty list; name modules or use 'all-linear'")


class LoraStrategy(Strategy):
    name = "lora"
    Options = LoraOptions
    summary = "PEFT LoRA adapters on the linear layers; saves a PEFT adapter"

    def peft_config(self) -> Any:
        from peft import LoraConfig

        o = self.opts
        return LoraConfig(r=o.r, lora_alpha=o.alpha, lora_dropout=o.dropout, bias=o.bias,
                          target_modules=o.target_modules, task_type="CAUSAL_LM")

    def prepare(self, model: Any) -> Prepared:
        return Prepared(model, self.peft_config())

    def save(self, model: Any, out: Path) -> None:
        model.save_pretrained(out, safe_serialization=True)

    def load_trained(self, base: Any, out: Path) -> Any:
        return load_adapter(base, out)

    def merge(self, model: Any) -> Any:
        return model.merge_and_unload()

    def export_peft(self, artifact: Path, out: Path) -> None:
        import shutil

        load_adapter_files(artifact)
        shutil.copytree(artifact, out, dirs_exist_ok=True)


def load_adapter(base: Any, out: Path) -> Any:
    """`PeftModel.from_pretrained`, with its failures said in one line: a missing or corrupt
    adapter file, or a base model whose shapes no longer match the adapter."""
    from peft import PeftModel

    weights = load_adapter_files(out)
    try:
        return PeftModel.from_pretrained(base, out)
    except RuntimeError as exc:  # torch: size mismatch while loading the state dict
        shape = next((ln.strip() for ln in str(exc).splitlines() if "size mismatch" in ln), "")
        raise UserError(f"{weights}: does not fit the base model ({shape or _first(exc)}); "
                        "was the run trained on another model, or has the base changed?") from None
    except Exception as exc:  # safetensors: a truncated or corrupt file
        if "safetensor" in type(exc).__module__.lower() or "header" in str(exc).lower():
            raise UserError(f"{weights}: unreadable ({_first(exc)}); the file is damaged, "
                            "train the run again or restore it") from None
        raise


def load_adapter_files(out: Path) -> Path:
    """The adapter's weights file, after checking both PEFT files are there."""
    weights = out / "adapter_model.safetensors"
    if not (out / "adapter_config.json").is_file() or not weights.is_file():
        missing = "adapter_config.json" if not (out / "adapter_config.json").is_file() else weights.name
        raise UserError(f"{out}: no {missing}; the run did not finish saving, train it again")
    return weights


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__

"""What every strategy built on one PEFT method (LoRA, IA3, ...) shares: the adapter folder as
its artifact, PEFT's own save and load, `merge_and_unload`, an export that is a copy of that
folder, and a check that the module names its options give exist. A subclass builds its PEFT
config (`peft_config`) and adds what is particular to its method; lora.py and ia3.py are the
examples, and a further PEFT method is one more file of the same shape."""
from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from ..errors import UserError, did_you_mean, first_line
from ..layers import is_classifier
from .base import Prepared, Strategy


class PeftStrategy(Strategy):
    artifact = "adapter"

    def peft_config(self, model: Any = None) -> Any:
        """The PEFT config of this method for `model` (see `task_type`)."""
        raise NotImplementedError

    def prepare(self, model: Any) -> Prepared:
        check_module_names(model, self.opts)
        return Prepared(model, self.peft_config(model))

    def save(self, model: Any, out: Path, state_dict: dict[str, Any] | None = None) -> None:
        model.save_pretrained(out, safe_serialization=True, state_dict=state_dict)

    def load_trained(self, base: Any, out: Path) -> Any:
        return load_adapter(base, out)

    def merge(self, model: Any) -> Any:
        return model.merge_and_unload()

    def export_peft(self, artifact: Path, out: Path) -> None:
        load_adapter_files(artifact)
        shutil.copytree(artifact, out, dirs_exist_ok=True)


def task_type(model: Any) -> str:
    """PEFT's task type: a classifier's new head then trains and saves with the adapter."""
    return "SEQ_CLS" if model is not None and is_classifier(model) else "CAUSAL_LM"


def check_module_names(model: Any, opts: Any) -> None:
    """Every module the options name (`target_modules`, `modules_to_save`) exists in the model:
    PEFT raises deep in SFTTrainer for an unmatched target, and silently trains without an
    unmatched modules_to_save. Names match as PEFT matches them: a list entry is a name
    suffix, a string a full regex."""
    names = [name for name, _ in model.named_modules()]
    leaves = sorted({name.rsplit(".", 1)[-1] for name in names if name})
    linear = sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules()
                     if type(m).__name__ == "Linear" and name})
    targets = getattr(opts, "target_modules", None)
    if isinstance(targets, str) and targets != "all-linear":
        if not any(re.fullmatch(targets, name) for name in names):
            raise UserError(f"strategy.target_modules: the regex '{targets}' matches no module name "
                            f"of the model; name modules in a list, e.g. [{', '.join(linear[:2])}]")
    wanted = [("target_modules", t) for t in (targets if isinstance(targets, list) else [])]
    for key, name in [*wanted, *(("modules_to_save", m) for m in getattr(opts, "modules_to_save", None) or [])]:
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

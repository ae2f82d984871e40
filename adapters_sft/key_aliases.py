"""Names users bring from other tools (PEFT's `lora_alpha`, Axolotl's `lora_r`, `lr`,
`epochs`, ...) mapped to the recipe key that means the same here, so an unknown key gets the
right suggestion even where no spelling is close (`rank` -> `strategy.r`)."""
from __future__ import annotations

from collections.abc import Iterable

from .errors import did_you_mean

# bare name a user writes -> the dotted recipe key it means here
ALIASES = {
    "rank": "strategy.r", "lora_r": "strategy.r", "lora_rank": "strategy.r",
    "lora_alpha": "strategy.alpha", "lora_dropout": "strategy.dropout",
    "lora_target_modules": "strategy.target_modules", "target": "strategy.target_modules",
    "targets": "strategy.target_modules", "method": "strategy.name", "adapter": "strategy.name",
    "lr": "training.learning_rate", "learning_rate": "training.learning_rate",
    "epochs": "training.num_train_epochs", "num_epochs": "training.num_train_epochs",
    "num_train_epochs": "training.num_train_epochs", "steps": "training.max_steps",
    "max_steps": "training.max_steps",
    "batch_size": "training.per_device_train_batch_size",
    "micro_batch_size": "training.per_device_train_batch_size",
    "per_device_train_batch_size": "training.per_device_train_batch_size",
    "gradient_accumulation_steps": "training.gradient_accumulation_steps",
    "grad_accum": "training.gradient_accumulation_steps",
    "warmup_steps": "training.warmup_steps", "weight_decay": "training.weight_decay",
    "max_seq_length": "data.max_length", "max_seq_len": "data.max_length",
    "seq_len": "data.max_length", "sequence_len": "data.max_length",
    "cutoff_len": "data.max_length", "max_length": "data.max_length",
    "dataset": "data.train", "datasets": "data.train", "train_file": "data.train",
    "eval_file": "data.eval", "val_set_size": "data.val_size",
    "chat_template": "data.template", "packing": "data.packing",
    "base_model": "model", "model_name": "model", "model_name_or_path": "model",
    "model_id": "model", "output": "output_dir", "out_dir": "output_dir",
    "torch_dtype": "dtype",
    "bits": "strategy.bits",
}


def suggest(key: str, section: str, names: Iterable[str]) -> str:
    """' (did you mean X?)' for the unknown `key` under `section` ('' for the top level):
    the alias's own key where one is known, else the closest spelling among `names`."""
    names = list(names)
    target = ALIASES.get(key)
    if target is not None:
        home, _, field = target.rpartition(".")
        if home == section and field in names:
            return f" (did you mean '{field}'? that is its name here)"
        if home != section:
            return f" (did you mean '{target}'? that is its name here)"
    return did_you_mean(key, names)

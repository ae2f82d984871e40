"""The `training:` keys we pass on to TRL's `SFTConfig` (classification: transformers'
`TrainingArguments`): which are ours elsewhere, which values are refused, and the range of
every number. The Trainer checks few numbers, and late: after the model loaded, or never
(`max_steps: 0` trained one step, `learning_rate: -1` failed in the optimizer). So every
numeric key is range-checked here, before anything loads: by the table below, or, for a key
it does not list (a new TRL option included), as a count, size or rate: finite and >= 0.
"""
from __future__ import annotations

import dataclasses
import os
import typing
from typing import Any, Callable

from ..errors import UserError, did_you_mean
from ..fields import Range, check_range, check_type

# Keys the run owns; setting them under training: would split the truth in two.
OWNED = {"output_dir": "output_dir", "seed": "seed", "max_length": "data.max_length",
         "save_total_limit": "checkpoint.keep",
         "assistant_only_loss": "data.train_on_prompt", "completion_only_loss": "data.train_on_prompt",
         "fsdp": "distributed.sharding", "fsdp_config": "distributed.sharding",
         "deepspeed": "distributed.sharding"}

# Values that would make checkpoints unable to resume exactly.
REFUSED = {
    "save_only_model": (True, "checkpoints would lack the optimizer, scheduler and RNG states, and "
                              "a resumed run would silently restart them; remove it"),
    "save_strategy": ("best", "saves only on a new best evaluation, which would override the "
                              "checkpoint: schedule; use steps or epoch (with load_best_model_at_end)"),
}

ABOVE_0 = Range(0, low_open=True)
AT_LEAST_1 = Range(1)
FRACTION = Range(0, 1, high_open=True)
DEFAULT = Range(0)  # a count, size or rate
RANGES = {
    "num_train_epochs": ABOVE_0, "logging_steps": ABOVE_0, "save_steps": ABOVE_0,
    "eval_steps": ABOVE_0, "adam_epsilon": ABOVE_0, "neftune_noise_alpha": ABOVE_0,
    "per_device_train_batch_size": AT_LEAST_1, "per_device_eval_batch_size": AT_LEAST_1,
    "gradient_accumulation_steps": AT_LEAST_1, "eval_accumulation_steps": AT_LEAST_1,
    "torch_empty_cache_steps": AT_LEAST_1, "dataloader_prefetch_factor": AT_LEAST_1,
    "dataset_num_proc": AT_LEAST_1, "ddp_timeout": AT_LEAST_1, "ddp_bucket_cap_mb": AT_LEAST_1,
    "adam_beta1": FRACTION, "adam_beta2": FRACTION, "label_smoothing_factor": Range(0, 1),
    "data_seed": Range(0, 2 ** 32 - 1), "local_rank": Range(-1),
}


def numeric_keys(config_cls: type) -> dict[str, Any]:
    """Key -> type hint, for every field of `config_cls` that holds a number."""
    hints = typing.get_type_hints(config_cls)
    out = {}
    for f in dataclasses.fields(config_cls):
        arms = typing.get_args(hints[f.name]) or (hints[f.name],)
        if f.init and any(a in (int, float) for a in arms):
            out[f.name] = hints[f.name]
    return out


# the simple type hints a value is checked against (others: only the range of a number)
_SIMPLE = {"int": int, "float": float, "bool": bool, "str": str, "int|None": int | None,
           "float|None": float | None, "str|None": str | None}


@dataclasses.dataclass(frozen=True)
class Schema:
    """What `check` needs of a Trainer config class: its name, its fields and their simple
    type hints. Read from the class, or from a copy cached per library versions (`schema`),
    so `validate` answers without importing TRL (seconds, where the rest takes a tenth)."""
    name: str
    fields: frozenset[str]
    hints: dict[str, Any]

    @classmethod
    def of(cls, config_cls: type) -> Schema:
        hints = typing.get_type_hints(config_cls)
        simple = {v: k for k, v in _SIMPLE.items()}
        fields = [f.name for f in dataclasses.fields(config_cls) if f.init]
        return cls(config_cls.__name__, frozenset(fields),
                   {f: hints[f] for f in fields if hints.get(f) in simple})

    def to_json(self) -> dict[str, Any]:
        simple = {v: k for k, v in _SIMPLE.items()}
        return {"name": self.name, "fields": sorted(self.fields),
                "hints": {k: simple[v] for k, v in self.hints.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Schema:
        return cls(data["name"], frozenset(data["fields"]), {k: _SIMPLE[v] for k, v in data["hints"].items()})


def schema(task: Any) -> Schema:
    """The schema of `task`'s config class, from the cache when these library versions wrote
    it, else from the class (importing it) and then cached."""
    import json
    from importlib import metadata

    from ..models import cache_dir

    try:
        tag = "-".join(metadata.version(lib) for lib in ("adapters-sft", "transformers", "trl"))
    except metadata.PackageNotFoundError:
        tag = ""
    path = cache_dir() / "schemas" / f"{task.name}-{tag}.json"
    if tag:
        try:
            return Schema.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError):
            pass
    found = Schema.of(task.config_class())
    if tag:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}")
            tmp.write_text(json.dumps(found.to_json()), encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only cache: slower next time, not wrong
    return found


def check(training: dict[str, Any], config: type | Schema, ours: tuple[str, ...],
          where: Callable[[str], str]) -> None:
    """Every key known, not owned elsewhere, not refused, of its type and in range."""
    found = config if isinstance(config, Schema) else Schema.of(config)
    fields, hints = found.fields, found.hints
    for key, value in training.items():
        dotted = f"training.{key}"
        at = where(dotted)
        if key in REFUSED and value == REFUSED[key][0]:
            raise UserError(f"{at}{dotted}: {REFUSED[key][1]}")
        if key in OWNED:
            raise UserError(f"{at}{dotted}: set by the recipe's '{OWNED[key]}' key instead; "
                            "remove it from training")
        if key not in fields:
            from ..key_aliases import suggest

            raise UserError(f"{at}{dotted}: not an option of {found.name} or ours"
                            f"{suggest(key, 'training', [*fields, *ours])}")
        if key in hints:
            value = check_type(value, hints[key], dotted, where)
        if key == "max_steps" and value == -1:
            continue  # -1: train num_train_epochs epochs
        if key == "max_steps" and isinstance(value, int) and value < 1:
            raise UserError(f"{at}{dotted}: must be at least 1, or -1 to train num_train_epochs "
                            f"epochs; got {value}")
        check_range(value, RANGES.get(key, DEFAULT), dotted, where)


def check_recipe(recipe: Any, config: type | Schema, has_eval: bool) -> None:
    """The `training:` keys of `recipe` (those that are not ours) against the Trainer's config
    (a class, or its cached Schema): known, typed, in range, reporters installed, an
    evaluation schedule only with held-out data."""
    from . import own_keys

    _, training = recipe.training_split
    check(training, config, own_keys.KEYS, recipe.where)
    check_reporters(training, recipe.where)
    check_evaluation(training, has_eval, recipe.where)


def check_reporters(training: dict[str, Any], where: Callable[[str], str]) -> None:
    """`report_to` names integrations that are known and installed: the Trainer would
    otherwise fail after the model loaded (a missing wandb is a RuntimeError there)."""
    value = training.get("report_to")
    if value is None:
        return
    from transformers.integrations import get_available_reporting_integrations
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    at = where("training.report_to")
    for name in [value] if isinstance(value, str) else list(value):
        if name in ("none", "all"):
            continue
        if name not in INTEGRATION_TO_CALLBACK:
            raise UserError(f"{at}training.report_to: '{name}' is not a reporting integration"
                            f"{did_you_mean(str(name), INTEGRATION_TO_CALLBACK)}; known: "
                            f"{', '.join(sorted(INTEGRATION_TO_CALLBACK))}, none")
        if name not in get_available_reporting_integrations():
            raise UserError(f"{at}training.report_to: {name} is not installed; pip install {name} "
                            "or remove it (metrics.jsonl in the run holds every logged value)")


def check_evaluation(training: dict[str, Any], has_eval: bool, where: Callable[[str], str]) -> None:
    """An evaluation schedule needs held-out data: the Trainer says so only after loading."""
    schedule = training.get("eval_strategy", "no")
    if schedule != "no" and not has_eval:
        raise UserError(f"{where('training.eval_strategy')}training.eval_strategy: {schedule} needs "
                        "held-out data; set data.eval=PATH or data.val_size, or remove it")

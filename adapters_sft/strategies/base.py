"""The strategy contract.

A strategy is a class with a `name`, a typed `Options` dataclass, and a few hooks that the
shared trainer calls in order:

    preflight()     -> cheap checks (e.g. an optional dependency) before anything is written
    load_options()  -> extra kwargs for `from_pretrained` (dtype, quantization, device map)
    check_processes(n)       optional refusal of an n-process run (pre-flight, before launching)
    check_training(args)     optional check against the Trainer's config (pre-flight, full rules)
    prepare(model)  -> Prepared(model, peft_config): freeze/unfreeze or inject adapters; the
                       trainer hands `peft_config` to TRL's SFTTrainer, which applies it
    after_trainer(trainer)   optional last word once the trainer has wrapped the model
    checkpoint_state() / restore_checkpoint_state(tensors)   what besides the trained
                       parameters an exact resume needs (AdaLoRA's importance scores)
    lr_scale()               optional name -> learning-rate factor (LoRA+); None for one lr
    builds_optimizer()       the option, if set, with which it builds its own optimizer (BAdam)
    later_params()           parameters frozen now that training will unfreeze (gradual)
    save(model, dir)         write only what was trained into `dir`
    load_trained(base, dir)  put what `save` wrote back onto a freshly loaded base model
                             (callers use restore(), which says a damaged file in one line)
    check_mergeable()        raise a UserError saying why, if what trained cannot be folded
    load_for_merge(recipe, dir)  the trained model in full precision, ready to fold
    merge(model)             fold what trained into plain weights (LoRA: merge_and_unload)
    export_peft(dir, out)    copy what trained as a folder vanilla PEFT loads, or say why not

`prepare` gets a causal LM or, for `task: classification`, a sequence-classification model
(layers.is_classifier tells them apart; layers.task_head finds the head of either).

A third-party strategy subclasses `Strategy` in its own package and declares it under the
`adapters_sft.strategies` entry-point group; nothing in core changes. One built on a PEFT
method subclasses peft_method.PeftStrategy and only builds its PEFT config (ia3.py).
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Callable, ClassVar

from ..errors import UserError
from ..fields import build


@dataclasses.dataclass
class Options:
    """Options every strategy shares; subclasses add their own fields."""

    name: str = dataclasses.field(default="", metadata={"help": "registered strategy name"})


@dataclasses.dataclass
class Prepared:
    model: Any
    peft_config: Any = None


class Strategy:
    name: ClassVar[str] = ""
    Options: ClassVar[type[Options]] = Options
    #: run-directory folder that `save` writes (`adapter` or `weights`)
    artifact: ClassVar[str] = "adapter"
    #: one line for `adapters-sft ls`
    summary: ClassVar[str] = ""
    #: whether the plan counts `later_params` as trained: gradual unfreezing trains them all by
    #: the end; LISA only ever the few it draws
    later_counted: ClassVar[bool] = True

    def __init__(self, opts: Options) -> None:
        self.opts = opts

    @classmethod
    def from_dict(cls, values: dict[str, Any],
                  where: Callable[[str], str] = lambda key: "") -> Strategy:
        return cls(build(cls.Options, values, "strategy", where))

    def preflight(self) -> None:
        """Cheap checks (optional dependencies, ...) run before anything is loaded or written."""

    def check_processes(self, processes: int) -> None:
        """Refuse a run of `processes` data-parallel processes this strategy cannot train
        (pre-flight, also in the command that launches them)."""

    def check_training(self, args: Any) -> None:
        """Checks against the Trainer's config (`args`), in pre-flight, before any model loads."""

    def load_options(self) -> dict[str, Any]:
        return {}

    def prepare(self, model: Any) -> Prepared:
        raise NotImplementedError

    def after_trainer(self, trainer: Any) -> None:
        """Called once the trainer has built the final model, before training starts."""

    def checkpoint_state(self) -> dict[str, Any]:
        """Tensors besides the trained parameters that an exact resume needs, by name; each
        checkpoint keeps them (checkpoint_trainer.py). Most strategies need none."""
        return {}

    def restore_checkpoint_state(self, tensors: dict[str, Any]) -> None:
        """Put back what `checkpoint_state` returned, when a run resumes."""

    def builds_optimizer(self) -> str | None:
        """The option that makes this strategy build its own optimizer groups (BAdam), if set:
        pre-flight refuses our groups and a low-rank `training.optim` beside it."""
        return None

    def lr_scale(self) -> Callable[[str], float] | None:
        """A per-parameter learning-rate factor by parameter name, or None (one rate)."""
        return None

    def later_params(self) -> list[Any]:
        """Parameters frozen at the start that training will unfreeze: the optimizer must
        hold them from the start (optim.py)."""
        return []

    def save(self, model: Any, out: Path, state_dict: dict[str, Any] | None = None) -> None:
        """Write what trained into `out`. `state_dict`: given only for a sharded run (FSDP,
        ZeRO-3), whose parameters are each process's shards: the whole model's weights gathered
        from every process (names as `model.state_dict()`), to save from instead."""
        raise NotImplementedError

    def load_trained(self, base: Any, out: Path) -> Any:
        raise NotImplementedError

    def restore(self, base: Any, out: Path) -> Any:
        """`load_trained`, with a damaged or truncated file said in one line naming it;
        what callers use, so no strategy has to repeat the translation."""
        with damaged_run_file(out):
            return self.load_trained(base, out)

    def check_mergeable(self) -> None:
        """Raise a UserError saying why and what to do instead, if `merge` cannot work."""

    def load_for_merge(self, recipe: Any, out: Path) -> Any:
        """The model as trained, in float32 on the CPU: a merge folds in full precision and
        casts to the asked dtype only at the end. Quantized strategies override this."""
        import torch

        from ..models import load_model

        base = load_model(recipe.model, {"dtype": torch.float32}, recipe.trust_remote_code)
        return self.restore(base, out)

    def merge(self, model: Any) -> Any:
        """Fold what trained into plain weights; strategies that train weights in place have
        nothing to fold."""
        return model

    def export_peft(self, artifact: Path, out: Path) -> None:
        """Write a folder that `PeftModel.from_pretrained(base, out)` loads."""
        raise UserError(f"--format peft: strategy '{self.name}' trains no PEFT adapter "
                        "(it changes the model's own weights); use --format safetensors")


def freeze_all(model: Any) -> None:
    for p in model.parameters():
        p.requires_grad_(False)


def save_trainable(model: Any, out: Path, config: dict[str, Any],
                   state_dict: dict[str, Any] | None = None) -> None:
    """Save exactly the parameters that require grad, plus a JSON config, as safetensors
    (from `state_dict` where a sharded run gathered it: Strategy.save)."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    save_file(trainable_tensors(model, state_dict=state_dict), str(out / "trained.safetensors"))
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def trainable_tensors(model: Any, also: Iterable[Any] = (),
                      state_dict: dict[str, Any] | None = None) -> dict[str, Any]:
    """The parameters that require grad, plus `also` (frozen for now), by name, on the CPU:
    what a run or a checkpoint keeps; their values from `state_dict` where given (a sharded
    run's gathered weights, whose names are the parameters' own)."""
    extra = {id(p) for p in also}
    source = state_dict or {}
    return {n: source.get(n, p).detach().contiguous().cpu() for n, p in model.named_parameters()
            if p.requires_grad or id(p) in extra}


def damaged_run_file(out: Path) -> Any:
    """Context: a truncated or corrupt file under `out` (a run's saved part) in one line."""
    from ..errors import unreadable

    return unreadable(f"{out}", "the run's saved weights are damaged; restore the run folder "
                                "from a copy, or train it again")


def load_saved(model: Any, out: Path) -> dict[str, Any]:
    """Copy tensors written by `save_trainable` into `model`; returns the saved config."""
    path = out / "trained.safetensors"
    if not path.is_file():
        raise UserError(f"{path}: missing; the run did not finish saving, train it again")
    copy_into(model, path)
    return json.loads((out / "config.json").read_text())


def copy_into(model: Any, path: Path) -> None:
    """Copy the tensors of a safetensors file into `model`'s parameters of the same names, in
    place; a name or shape the model lacks is a UserError (another model's file)."""
    import torch
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    params = dict(model.named_parameters())
    unknown = sorted(set(tensors) - set(params))
    if unknown:
        raise UserError(f"{path}: tensor '{unknown[0]}' has no place in the base model; "
                        "was the run trained on another model?")
    with torch.no_grad():
        for name, tensor in tensors.items():
            if params[name].shape != tensor.shape:
                raise UserError(f"{path}: '{name}' has shape {tuple(tensor.shape)}, the base model "
                                f"{tuple(params[name].shape)}; was the run trained on another model?")
            params[name].copy_(tensor)

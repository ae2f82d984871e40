"""`init_from: RUN_DIR`: start training from a finished run instead of the base model (the
common SFT -> DPO pipeline, or more SFT on new data).

A PEFT run's adapter is loaded trainable on the base, as TRL documents for training an
existing adapter; for DPO, TRL then keeps a frozen copy of it as the reference (adapter "ref"),
so the reference is the SFT model, not the base. A `full` run's weights are loaded as the
model itself, and a frozen copy of them is the DPO reference. The run must be of the same
base model and strategy as the recipe, so what trains is what the run trained; the recipe's
own strategy options are then the run's (its adapter's shape is fixed). Other strategies
(their trained parts are injected into the model by `prepare`) are refused in one line.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from .errors import UserError

SUPPORTED = ("lora", "qlora", "ia3", "full")


def check(recipe: Any) -> Any:
    """The run `init_from` names (runs.Opened), checked against the recipe; None if unset."""
    if not recipe.init_from:
        return None
    from .run_reader import open_run

    at = recipe.where("init_from")
    try:
        run = open_run(recipe.init_from)
    except UserError as exc:
        raise UserError(f"{at}init_from: {exc}") from None
    if run.recipe.model != recipe.model:
        raise UserError(f"{at}init_from: {run.path} was trained on '{run.recipe.model}', this recipe "
                        f"trains '{recipe.model}'; set model: to the run's base")
    # what cannot work at all first, so the fix named below is one that works
    if run.strategy.name not in SUPPORTED:
        raise UserError(f"{at}init_from: starting from a '{run.strategy.name}' run is not supported "
                        f"(supported: runs of {', '.join(SUPPORTED)}); remove init_from, or start "
                        "from a run of one of those")
    if run.strategy.name != recipe.strategy.name:
        raise UserError(f"{at}init_from: {run.path} is a '{run.strategy.name}' run and this recipe's "
                        f"strategy is '{recipe.strategy.name}'; use strategy={run.strategy.name}")
    from .registry import get_task

    if not get_task(run.recipe.task).generative or not get_task(recipe.task).generative:
        raise UserError(f"{at}init_from: starts a generative task from a generative run; {run.path} is "
                        f"a {run.recipe.task} run and this recipe's task is {recipe.task}")
    return run


def start(recipe: Any, strategy: Any, model: Any, reference: bool = False) -> tuple[Any, Any, Any]:
    """(model to train, peft_config for the trainer, reference model or None) from the freshly
    loaded base `model`: the strategy's own preparation, or the init_from run on top of it.
    `reference`: the task compares with a reference model (a `full` run's is a frozen copy)."""
    run = check(recipe)
    if run is None:
        ready = strategy.prepare(model)
        return ready.model, ready.peft_config, None
    run.check_base()
    if strategy.name == "full":
        trained = run.strategy.restore(model, run.artifact)
        frozen = copy.deepcopy(trained).eval().requires_grad_(False) if reference else None
        return strategy.prepare(trained).model, None, frozen
    from peft import PeftModel

    ready = strategy.prepare(model)  # qlora: the k-bit preparation of the base
    adapter = PeftModel.from_pretrained(ready.model, Path(run.artifact), is_trainable=True)
    return adapter, None, None

"""Read a finished run directory back: the model as trained, its tokenizer and recipe.

Everything comes from the run directory (resolved recipe, saved tokenizer with its chat
template, the strategy's artifact), never from the command line that trained it.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from .errors import UserError, unreadable
from .rundir import RECIPE, TOKENIZER, partial_dir


@dataclasses.dataclass
class Opened:
    """A finished run directory, read back."""
    path: Path
    recipe: Any
    strategy: Any
    artifact: Path
    tokenizer: Any

    def check_base(self) -> None:
        """Before loading: the base model a run was trained on is still where it was (runs
        store a local base as an absolute path); else one line saying how to point at it."""
        base = Path(self.recipe.model)
        if base.is_absolute() and not base.exists():
            raise UserError(f"{self.path / RECIPE}: model '{base}', the base this run was "
                            "trained on, no longer exists; put it back, or set `model:` in that "
                            "file to where it is now")


def open_run(run_dir: str | Path, verb: str = "") -> Opened:
    """Recipe, strategy, artifact folder and tokenizer of a finished run, from the run
    directory alone; no weights load. `verb` names a command that needs a generative run."""
    from transformers import AutoTokenizer

    from .loading import build_strategy
    from .recipe import load_recipe
    from .registry import get_task

    run = Path(run_dir)
    partial = partial_dir(run)
    if not (run / RECIPE).is_file():
        if not run.exists() and not partial.is_dir():
            from .errors import did_you_mean

            parent = run.parent if str(run.parent) else Path(".")
            near = did_you_mean(run.name, [p.name for p in parent.iterdir() if p.is_dir()]) \
                if parent.is_dir() else ""
            raise UserError(f"{run}: no such run directory{near}; give the folder a run was "
                            "saved in (train prints it: 'run saved in ...')")
        if partial.is_dir():
            raise UserError(f"{run}: not a finished run: its training never finished (only the "
                            f"staging folder {partial} exists); train it first: continue it with "
                            f"'adapters-sft resume {run}' or start it again")
        raise UserError(f"{run}: not a finished run: it holds no {RECIPE}; train it first, "
                        "or give a run directory")
    recipe = load_recipe(str(run / RECIPE))
    if verb and not get_task(recipe.task).generative:
        raise UserError(f"{run}: a {recipe.task} run, and {verb} works on generative runs; "
                        f"score it with 'adapters-sft eval {run}'")
    strategy = build_strategy(recipe)
    artifact = run / strategy.artifact
    if not artifact.is_dir() or not (run / TOKENIZER).is_dir():
        missing = artifact if not artifact.is_dir() else run / TOKENIZER
        raise UserError(f"{missing}: missing; the run did not finish saving, train it again")
    with unreadable(f"{run / TOKENIZER}", "the run's tokenizer is damaged; restore the run "
                                         "folder from a copy, or train it again"):
        tokenizer = AutoTokenizer.from_pretrained(run / TOKENIZER)
    return Opened(run, recipe, strategy, artifact, tokenizer)


def load_run(run_dir: str | Path, verb: str = "") -> tuple[Any, Any, Any]:
    """(model, tokenizer, recipe) of a finished run; the model is in eval mode."""
    from .loading import model_load_kwargs
    from .registry import get_task

    run = open_run(run_dir, verb)
    run.check_base()
    base = get_task(run.recipe.task).load_run_model(run, model_load_kwargs(run.recipe, run.strategy))
    model = run.strategy.restore(base, run.artifact)
    return model.eval(), run.tokenizer, run.recipe


def load_model_or_run(ref: str, verb: str) -> tuple[Any, Any]:
    """(model, tokenizer) of a run directory (as trained: adapter on its base, training chat
    template), or of a model folder (a merged one included), hub id or alias, as it is."""
    from .models import load_model, load_tokenizer

    if (Path(ref) / RECIPE).is_file():
        model, tokenizer, _ = load_run(ref, verb)
        return model, tokenizer
    if Path(ref).is_dir() and not (Path(ref) / "config.json").is_file():
        raise UserError(f"{ref}: neither a run directory (no recipe.yaml) nor a model folder "
                        "(no config.json)")
    return load_model(ref, {}).eval(), load_tokenizer(ref)

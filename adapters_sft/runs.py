"""Read a finished run directory back: the model as trained, its tokenizer and recipe.

Everything comes from the run directory (resolved recipe, saved tokenizer with its chat
template, the strategy's artifact), never from the command line that trained it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import UserError


def load_run(run_dir: str | Path) -> tuple[Any, Any, Any]:
    """(model, tokenizer, recipe) of a finished run; the model is in eval mode."""
    from transformers import AutoTokenizer

    from .models import load_model
    from .recipe import load_recipe
    from .trainer import build_strategy, model_load_kwargs

    run = Path(run_dir)
    if not (run / "recipe.yaml").is_file():
        raise UserError(f"{run}: not a finished run (no recipe.yaml); train it first")
    recipe = load_recipe(str(run / "recipe.yaml"))
    strategy = build_strategy(recipe)
    base = load_model(recipe.model, model_load_kwargs(recipe, strategy), recipe.trust_remote_code)
    model = strategy.load_trained(base, run / strategy.artifact)
    tokenizer = AutoTokenizer.from_pretrained(run / "tokenizer")
    return model.eval(), tokenizer, recipe


def load_model_or_run(ref: str) -> tuple[Any, Any]:
    """(model, tokenizer) of a run directory (as trained: adapter on its base, training chat
    template), or of a model folder (a merged one included), hub id or alias, as it is."""
    from .models import load_model, load_tokenizer

    if (Path(ref) / "recipe.yaml").is_file():
        model, tokenizer, _ = load_run(ref)
        return model, tokenizer
    if Path(ref).is_dir() and not (Path(ref) / "config.json").is_file():
        raise UserError(f"{ref}: neither a run directory (no recipe.yaml) nor a model folder "
                        "(no config.json)")
    return load_model(ref, {}).eval(), load_tokenizer(ref)

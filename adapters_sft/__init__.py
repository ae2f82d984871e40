"""adapters-sft: parameter-efficient fine-tuning of LLMs on TRL's SFTTrainer.

Public API (the CLI is a thin layer over it):

    from adapters_sft import load_recipe, train, load_run, list_strategies, register_strategy
    result = train(load_recipe("smollm2-135m/lora", ["training.max_steps=20"]))
    resume("runs/smollm2-135m/lora")                    # an interrupted run, from its checkpoint
    model, tokenizer, recipe = load_run(result.run_dir)
    merge(result.run_dir, "merged/")                     # drift-checked standalone model
    export(result.run_dir, "gguf", "gguf/", outtype="f16")  # or "peft", "safetensors"

Importing this package imports no ML library; each function imports what it needs.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import UserError
from .recipe import Recipe, load_recipe
from .registry import register_strategy
from .registry import strategy_names as list_strategies

if TYPE_CHECKING:
    from pathlib import Path

    from .trainer import RunResult

__all__ = ["Recipe", "UserError", "export", "list_strategies", "load_recipe", "load_run",
           "merge", "register_strategy", "resume", "train"]


def train(recipe: Recipe) -> RunResult:
    """Train a loaded recipe into its run directory (see `adapters_sft.trainer.train`)."""
    from .trainer import train as _train

    return _train(recipe)


def resume(run_dir: str | Path, overrides: list[str] | None = None, force: bool = False) -> RunResult:
    """Continue an interrupted run from its newest complete checkpoint (`adapters_sft.resume`)."""
    from pathlib import Path

    from .resume import resume as _resume

    return _resume(Path(run_dir), overrides, force)


def load_run(run_dir: str | Path) -> tuple[Any, Any, Recipe]:
    """(model, tokenizer, recipe) of a finished run (see `adapters_sft.run_reader.load_run`)."""
    from .run_reader import load_run as _load_run

    return _load_run(run_dir)


def merge(run_dir: str | Path, out: str | Path, dtype: str = "auto", overwrite: bool = False) -> Any:
    """Merge a run into a standalone model folder (see `adapters_sft.export.merge`)."""
    from pathlib import Path

    from .export import merge_run
    from .rundir import exclusive

    with exclusive(Path(out), "--out"):
        return merge_run(run_dir, out, dtype, overwrite)


def export(run_dir: str | Path, fmt: str, out: str | Path, outtype: str = "f16",
           overwrite: bool = False) -> dict[str, Any]:
    """Export a run as peft, safetensors or gguf (see `adapters_sft.export.formats`)."""
    from pathlib import Path

    from .export import export_run
    from .rundir import exclusive

    with exclusive(Path(out), "--out"):
        return export_run(run_dir, fmt, out, outtype=outtype, overwrite=overwrite)

"""`adapters-sft train NAME|PATH [k=v ...]`: train a recipe into its run directory."""
from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a recipe (name or path) with key=value overrides")
    p.add_argument("recipe", help="recipe name (see ls) or path to a YAML file")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="e.g. strategy.r=8 training.max_steps=20 data.train=my.jsonl output_dir=out/x")
    p.set_defaults(run=run)


def quiet_libraries() -> None:
    """Keep the terminal to our lines and the Trainer's progress bar."""
    import warnings

    import datasets
    import transformers

    warnings.filterwarnings("ignore", message=".*pin_memory.*")
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()  # weight-loading bars; the Trainer's bar stays
    datasets.disable_progress_bars()


def run(args: argparse.Namespace) -> int:
    from ..recipe import load_recipe
    from ..trainer import train

    recipe = load_recipe(args.recipe, args.overrides)
    quiet_libraries()
    report(train(recipe, echo=lambda line: print(f"adapters-sft: {line}", flush=True)))
    return 0


def report(result: Any) -> None:
    """The closing lines of a finished run (train and resume)."""
    from ..registry import get_task

    before, after = result.scores.get("before"), result.scores.get("after")
    if before and after:
        print(f"adapters-sft: held-out {get_task(result.task).compare(before, after)}")
    cost = result.cost
    if cost:
        from ..measure import memory_kind

        speed = (f"trained at {cost['tokens_per_second']:g} tokens/s (real tokens), padding "
                 f"{cost['padding']:.1%}, " if "tokens_per_second" in cost else "")
        print(f"adapters-sft: {speed}peak memory {cost['peak_memory_gb']:.2f} GB ({memory_kind()})")
    print(f"adapters-sft: run saved in {result.run_dir}")

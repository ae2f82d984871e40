"""`adapters-sft validate NAME|PATH [k=v ...]`: check a recipe without loading a model."""
from __future__ import annotations

import argparse

import yaml


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check a recipe, its overrides and its data files in about a "
                                        "second (check adds the tokenized view; see preflight.rules)")
    p.add_argument("recipe", help="recipe name (see ls) or path to a YAML file")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. strategy.r=8")
    p.add_argument("--no-data", action="store_true",
                   help="skip reading data files (for recipes meant for another machine)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..preflight import rules
    from ..recipe import load_recipe
    from ..registry import get_task
    from ..training import trainer_keys

    recipe = load_recipe(args.recipe, args.overrides)
    if args.no_data:  # without reading data, assume the held-out split the recipe names
        trainer_keys.check_recipe(recipe, trainer_keys.schema(get_task(recipe.task)), True)
    else:
        splits = rules(recipe, full=False).splits
        print(f"data: {len(splits.train.rows)} training rows ({splits.format})"
              + (f", {len(splits.eval.rows)} held-out rows" if splits.eval else ""))
    print(yaml.safe_dump(recipe.to_dict(), sort_keys=False).rstrip())
    print(f"ok: {recipe.source} is valid")
    return 0

"""`adapters-sft validate NAME|PATH [k=v ...]`: check a recipe without loading a model."""
from __future__ import annotations

import argparse

import yaml


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check a recipe, its overrides and its data files")
    p.add_argument("recipe", help="recipe name (see ls) or path to a YAML file")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. strategy.r=8")
    p.add_argument("--no-data", action="store_true",
                   help="skip reading data files (for recipes meant for another machine)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..recipe import load_recipe
    from ..preflight import check_eval, load_data
    from ..training_args import training_args

    recipe = load_recipe(args.recipe, args.overrides)
    has_eval = True  # without reading data, assume the held-out split the recipe names
    if not args.no_data:
        splits = load_data(recipe)
        has_eval = splits.eval is not None
        print(f"data: {len(splits.train.rows)} training rows ({splits.format})"
              + (f", {len(splits.eval.rows)} held-out rows" if splits.eval else ""))
        check_eval(recipe, splits.kind)
    training_args(recipe, has_eval=has_eval)
    print(yaml.safe_dump(recipe.to_dict(), sort_keys=False).rstrip())
    print(f"ok: {recipe.source} is valid")
    return 0

"""`adapters-sft show NAME|PATH`: a recipe's text, its strategy's options and the data,
training and checkpoint options, with help; `show STRATEGY` (lora, loha, ...): that strategy's
options alone."""
from __future__ import annotations

import argparse

from ..checkpoints import CheckpointSection
from ..training.own_keys import OwnKeys
from ..recipe import DataSection, find_recipe, read_recipe_file
from ..registry import get_strategy
from ..fields import describe_fields


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="print a recipe and the options of its strategy, or a "
                                    "strategy's options")
    p.add_argument("recipe", help="recipe name (see ls), path to a YAML file, or strategy name")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import UserError
    from ..registry import strategy_names

    try:
        _, path = find_recipe(args.recipe)
    except UserError:
        if args.recipe not in strategy_names():
            raise
        strategy_options(args.recipe)  # a strategy's name, not a recipe's
        return 0
    raw, _ = read_recipe_file(path)  # same YAML checks as train: errors name file:line
    print(f"# {path}\n{path.read_text().rstrip()}\n")
    strategy = raw.get("strategy") or {}
    name = strategy if isinstance(strategy, str) else strategy.get("name")
    if name:
        strategy_options(name)
    print("\n# data options (docs/data.md; `adapters-sft check` shows what they do to your rows)")
    for field, type_, default, help_ in describe_fields(DataSection):
        print(f"#   data.{field} ({type_}, default {default!r}): {help_}")
    print("\n# our training keys, beside SFTConfig's / TrainingArguments' (docs/strategies.md)")
    for field, type_, default, help_ in describe_fields(OwnKeys):
        print(f"#   training.{field} ({type_}, default {default!r}): {help_}")
    print("\n# checkpoints for resume (docs/resume.md; `adapters-sft resume RUN_DIR` continues a run)")
    for field, type_, default, help_ in describe_fields(CheckpointSection):
        print(f"#   checkpoint.{field} ({type_}, default {default!r}): {help_}")
    return 0


def strategy_options(name: str) -> None:
    cls = get_strategy(name)
    print(f"# strategy '{name}': {cls.summary}")
    for field, type_, default, help_ in describe_fields(cls.Options):
        if field != "name":
            print(f"#   strategy.{field} ({type_}, default {default!r}): {help_}")

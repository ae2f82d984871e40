"""`adapters-sft check NAME|PATH [k=v ...]`: the data pre-flight, with the tokenizer only.

Prints rows per split, token lengths, what truncation would cut, one example with its trained
tokens marked, and the problems that would stop `train` (exit status 2 when there are any).
"""
from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="pre-flight the data: lengths, loss masks, EOS, problems")
    p.add_argument("recipe", help="recipe name (see ls) or path to a YAML file")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. data.train=my.jsonl")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                   help="highlight trained tokens in colour (auto: when printing to a terminal)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..data import load_splits
    from ..errors import UserError
    from ..recipe import load_recipe
    from ..registry import get_task, task_names
    from ..training_args import training_args

    recipe = load_recipe(args.recipe, args.overrides)
    splits = load_splits(recipe)
    config = training_args(recipe, has_eval=splits.eval is not None)
    task, mismatch = get_task(recipe.task), ""
    try:
        task.check_data(recipe, splits.kind)
    except UserError as exc:  # still show the data, as the task that trains on it reads it
        mismatch = str(exc)
        task = next((get_task(n) for n in task_names() if splits.kind in get_task(n).data_kinds), task)
    report = task.prepare(recipe, splits, config).report
    if mismatch:
        report.warnings.append(f"{mismatch} (shown here as task {task.name} reads it)")
    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    print(f"check {recipe.name}: model {recipe.model}")
    print(report.render(color))
    if report.fatal:
        raise UserError(f"data: {len(report.fatal)} problem(s) found (listed above); the first: "
                        f"{report.fatal[0]}")
    return 0

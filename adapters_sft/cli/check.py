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
    from ..errors import UserError
    from ..preflight import fatal_line, rules
    from ..recipe import load_recipe
    from ..registry import get_task

    recipe = load_recipe(args.recipe, args.overrides)
    # what train refuses before tokenizing, refused with its lines
    ready = rules(recipe, echo=lambda line: print(f"adapters-sft: {line}", file=sys.stderr, flush=True))
    report = get_task(recipe.task).tokenize(recipe, ready.splits, ready.args).report
    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    print(f"check {recipe.name}: model {recipe.model}")
    print(report.render(color))
    if report.fatal:
        raise UserError(fatal_line(report))
    return 0

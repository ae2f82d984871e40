"""`adapters-sft cp NAME DEST`: copy a shipped recipe to edit; the copy runs unchanged."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError
from ..recipe import find_recipe


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cp", help="copy a recipe to a file you can edit")
    p.add_argument("recipe", help="recipe name (see ls) or path")
    p.add_argument("dest", help="where to write the copy (a .yaml file or a folder)")
    p.add_argument("--force", action="store_true", help="replace an existing file")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    name, src = find_recipe(args.recipe)
    dest = Path(args.dest)
    if args.dest.endswith(("/", "\\")) and not dest.is_dir():
        raise UserError(f"cp: folder '{dest}' does not exist; create it first")
    if dest.is_dir():
        dest = dest / f"{Path(name).name}.yaml"
    if dest.exists() and not args.force:
        raise UserError(f"cp: '{dest}' already exists; choose another DEST or add --force")
    if not dest.parent.is_dir():
        raise UserError(f"cp: folder '{dest.parent}' does not exist; create it first")
    # The header's run command names the recipe; point it at the copy instead.
    text = src.read_text().replace(f"adapters-sft train {name}", f"adapters-sft train {dest}")
    dest.write_text(text)
    print(f"wrote {dest}; run it with: adapters-sft train {dest}")
    return 0

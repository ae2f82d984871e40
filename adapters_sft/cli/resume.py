"""`adapters-sft resume RUN_DIR [k=v ...] [--force]`: continue an interrupted run.

The run continues from its newest complete checkpoint in `.NAME.partial`, with the recipe it
started with; a change of recipe (the overrides), data, strategy, process count or library
versions is refused with one line unless `--force`.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("resume", help="continue an interrupted run from its last checkpoint")
    p.add_argument("run_dir", type=Path, help="the run's output_dir, e.g. runs/smollm2-135m/lora")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="changes to the recipe the run started with (refused without --force)")
    p.add_argument("--force", action="store_true",
                   help="resume although the recipe, data, strategy or versions changed")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..resume_run import resume
    from .train import quiet_libraries, report

    quiet_libraries()
    result = resume(args.run_dir, args.overrides, args.force,
                    echo=lambda line: print(f"adapters-sft: {line}", flush=True))
    report(result)
    return 0

"""`adapters-sft resume RUN_DIR [k=v ...] [--force] [--nproc N]`: continue an interrupted run
(a multi-process one with as many processes as it started with).

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
    from .train import add_launch_options

    add_launch_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..processes import is_main, world_size
    from ..launch import launch
    from ..resume import resume
    from .args import quiet_libraries
    from .train import report

    quiet_libraries()
    if args.nproc * args.nnodes > 1 and world_size() == 1:  # as many processes as the run had
        from ..launch import check_launch
        from ..resume import check_processes

        check_launch(args.nproc, args.nnodes, args.node_rank)
        check_processes(args.run_dir, args.nproc * args.nnodes, args.force)  # said once, here
        argv = ["resume", str(args.run_dir), *args.overrides] + (["--force"] if args.force else [])
        return launch(args.nproc, argv, args.nnodes, args.node_rank, args.rdzv_endpoint)
    result = resume(args.run_dir, args.overrides, args.force,
                    echo=lambda line: print(f"adapters-sft: {line}", flush=True))
    if is_main():
        report(result)
    return 0

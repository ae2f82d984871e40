"""`adapters-sft train NAME|PATH [k=v ...]`: train a recipe into its run directory."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a recipe (name or path) with key=value overrides")
    p.add_argument("recipe", help="recipe name (see ls) or path to a YAML file")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="e.g. strategy.r=8 training.max_steps=20 data.train=my.jsonl output_dir=out/x")
    p.add_argument("--ignore-plan", action="store_true",
                   help="train even where `adapters-sft plan` estimates the run will not fit in memory")
    add_launch_options(p)
    p.set_defaults(run=run)


def add_launch_options(p: argparse.ArgumentParser) -> None:
    from .args import number

    p.add_argument("--nproc", type=number(int, 1), default=1, metavar="N",
                   help="processes on this machine (one per GPU): data-parallel training under "
                        "torch.distributed.run (docs/distributed.md)")
    p.add_argument("--nnodes", type=number(int, 1), default=1, metavar="M",
                   help="machines taking part (each runs the same command with its --node-rank)")
    p.add_argument("--node-rank", type=number(int, 0), default=0, metavar="R",
                   help="this machine's index among --nnodes, from 0")
    p.add_argument("--rdzv-endpoint", metavar="HOST:PORT",
                   help="where the machines meet (the first machine's address and a free port); "
                        "needed with --nnodes above 1")


def run(args: argparse.Namespace) -> int:
    from .args import quiet_libraries
    from ..processes import is_main, launched
    from ..recipe import load_recipe
    from ..sharding import sharded
    from ..trainer import train

    recipe = load_recipe(args.recipe, args.overrides)
    quiet_libraries()
    if (args.nproc * args.nnodes > 1 or sharded(recipe)) and not launched():
        return launch(recipe, args)
    if not launched():
        gpu_recipe_here(recipe, args)
    # launched processes were planned by the launching command
    gate = (lambda ready: check_plan(recipe, args, ready)) if not launched() else None
    result = train(recipe, echo=lambda line: print(f"adapters-sft: {line}", flush=True), gate=gate)
    if is_main():
        report(result)
    return 0


def launch(recipe: Any, args: argparse.Namespace) -> int:
    """Check everything once here (recipe, data, strategy, plan), then train in --nproc
    processes: bad input is one line and exit 2 before any process starts."""
    from ..launch import check_launch, launch as run_processes
    from ..preflight import preflight
    from ..rundir import check_target

    check_launch(args.nproc, args.nnodes, args.node_rank)
    check_target(Path(recipe.output_dir), recipe.overwrite)
    ready = preflight(recipe, echo=lambda line: print(f"adapters-sft: {line}", flush=True),
                      processes=args.nproc * args.nnodes)
    check_plan(recipe, args, ready, processes=args.nproc)
    argv = ["train", args.recipe, *args.overrides] + (["--ignore-plan"] if args.ignore_plan else [])
    print(f"adapters-sft: training in {args.nproc * args.nnodes} processes "
          f"({args.nproc} on this machine) under torch.distributed.run", flush=True)
    status = run_processes(args.nproc, argv, args.nnodes, args.node_rank, args.rdzv_endpoint,
                           ready=ready if args.nnodes == 1 else None)
    if status != 0:
        print(f"adapters-sft: a training process failed (exit status {status}); the lines above "
              "say why", file=sys.stderr)
    return status


def check_plan(recipe: Any, args: argparse.Namespace, ready: Any, processes: int = 1) -> bool:
    """Print the plan's verdict for this machine once the data is prepared (no weights loaded
    yet), for rows as long as the longest one; refuse a run it says cannot fit, unless
    --ignore-plan. A recipe the plan cannot estimate trains unplanned, saying why (False).
    `ready` (preflight's) None: before the data is read, for rows of data.max_length."""
    from ..errors import UserError
    from ..plan import estimate
    from ..plan.target import this_machine

    try:
        est = estimate(recipe, this_machine(), longest_row(recipe, ready.prepared) if ready else None, processes)
    except Exception as exc:  # not modelled, or no config yet (a hub model not downloaded)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"adapters-sft: plan: no estimate ({reason}); training unplanned", flush=True)
        return False
    print(f"adapters-sft: {est.verdict()}", flush=True)
    if not est.fits and not args.ignore_plan:
        words = " ".join([args.recipe, *args.overrides])
        raise UserError(f"plan: the run would need about {est.needed / 2**30:.1f} GiB, more than "
                        f"the {est.target.memory / 2**30:.1f} GiB of {est.target.name}; "
                        f"'adapters-sft plan {words}' lists changes that fit, or add --ignore-plan")
    return True


def gpu_recipe_here(recipe: Any, args: argparse.Namespace) -> None:
    """A recipe made for a GPU, on a machine without one: before anything else (no data read,
    no model fetched), say so and plan it for this machine; refuse what will not fit."""
    from ..loading import cuda
    from ..plan import meant_for_note
    from ..plan.target import meant_for

    card = meant_for(recipe.name)
    if card is None or cuda():
        return
    if not check_plan(recipe, args, None):  # the plan's own line says it where there is one
        print(f"adapters-sft: note: {meant_for_note(recipe.name, *card)}; training on the CPU",
              flush=True)


def longest_row(recipe: Any, prepared: Any) -> int | None:
    """The tokens of the longest training row as batched (packed rows fill data.max_length),
    or None where the prepared rows do not say (the plan then assumes data.max_length)."""
    train = getattr(prepared, "train", None)
    if recipe.data.packing is True or train is None or "input_ids" not in train.column_names:
        return None
    longest = max((len(ids) for ids in train["input_ids"]), default=0)
    return min(longest, recipe.data.max_length or longest) or None


def report(result: Any) -> None:
    """The closing lines of a finished run (train and resume)."""
    from ..registry import get_task

    before, after = result.scores.get("before"), result.scores.get("after")
    if before and after:
        print(f"adapters-sft: held-out {get_task(result.task).compare(before, after)}")
    if result.scores.get("general"):
        from ..scores.general import line

        print(f"adapters-sft: {line(result.scores['general'])}")
    cost = result.cost
    if cost:
        from ..measure import memory_kind

        speed = (f"trained at {cost['tokens_per_second']:g} tokens/s (real tokens), padding "
                 f"{cost['padding']:.1%}, " if "tokens_per_second" in cost else "")
        print(f"adapters-sft: {speed}peak memory {cost['peak_memory_gb']:.2f} GB ({memory_kind()})")
    print(f"adapters-sft: run saved in {result.run_dir}")

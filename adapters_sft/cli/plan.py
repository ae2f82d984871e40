"""`adapters-sft plan NAME|PATH [k=v ...] [--gpu 4090 ...]`: will the recipe fit, term by term,
before any weights load (adapters_sft/plan/). Exit status 1 when it does not fit."""
from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..plan.target import GPUS
    from .args import number

    p = sub.add_parser("plan", help="estimate peak memory from the model's config, and whether it fits")
    p.add_argument("recipe", help="recipe name (see ls) or path to a YAML file")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="e.g. training.per_device_train_batch_size=2 data.max_length=1024")
    p.add_argument("--gpu", action="append", default=[], metavar="NAME",
                   help=f"plan for this GPU: its memory (24GB) or a name ({', '.join(GPUS)}); "
                        "repeat for several; default: this machine's GPU, else its CPU and RAM")
    p.add_argument("--nproc", type=number(int, 1), default=1, metavar="N",
                   help="plan one of N processes, one per GPU (as train --nproc N): data-parallel, "
                        "or sharded by the recipe's distributed.sharding")
    p.add_argument("--longest", action="store_true",
                   help="the longest data.max_length each GPU trains at the recipe's batch size, "
                        "and the single setting that would go furthest beyond it")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..plan import advise, estimate, gib
    from ..plan.target import named_gpu, this_machine
    from ..recipe import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    names = [n for item in args.gpu for n in item.split(",") if n.strip()]
    targets = [named_gpu(n) for n in names] or [this_machine()]
    quiet()
    if args.longest:
        return run_longest(args, recipe, targets)
    fits = True
    for target in targets:
        est = estimate(recipe, target, processes=args.nproc)
        print_estimate(est)
        if not est.fits:
            fits = False
            changes = advise(args.recipe, args.overrides, est, recipe)
            for change, other in changes:
                print(f"  would fit with {change}: about {gib(other.needed)}")
            if not changes:
                print("  no single change of batch size, max_length, checkpointing, 8-bit AdamW, "
                      "qlora or offloading makes it fit; combine them, or plan for a larger GPU")
    return 0 if fits else 1


def run_longest(args: argparse.Namespace, recipe: Any, targets: list[Any]) -> int:
    """One line per GPU; exit status 1 when a GPU cannot train even one token."""
    from ..plan.longest import Models, changed, furthest, line, longest

    status = 0
    models = Models()
    variants = changed(args.recipe, args.overrides, recipe)
    for target in targets:
        result = longest(recipe, target, models)
        print(f"adapters-sft: {line(result, target, recipe)}", flush=True)
        status = status or int(result.tokens == 0)
        best = furthest(variants, target, result, models)
        if best:
            print(f"  furthest with one change: {best[0]}: {best[1].tokens:,} tokens")
    return status


def print_estimate(est: Any) -> None:
    from ..plan import gib

    s = est.settings
    print(f"plan {est.recipe} on {est.target.name}: model {est.model}")
    print(f"  settings: {s.dtype}, batch {s.batch} x {s.length} tokens, gradient checkpointing "
          f"{'on' if s.checkpointing else 'off'}, optim {s.optim}"
          f"{', activation offloading' if s.offload else ''}"
          f"{f', MLP in {s.mlp_tile}-token tiles' if s.mlp_tile else ''}")
    for term in est.terms:
        print(f"  {term.name:<22}{gib(term.bytes):>12}   {term.note}")
    print(f"  {'tensors at peak':<22}{gib(est.tensors):>12}   the estimate of "
          f"{'torch.cuda.max_memory_allocated' if est.target.cuda else 'the tensors alive at once'}")
    print(f"  {'overhead':<22}{gib(est.target.overhead):>12}   {est.target.overhead_note}")
    for note in est.notes:
        print(f"  note: {note}")
    print(f"adapters-sft: {est.verdict()}")


def quiet() -> None:
    import logging

    import transformers

    transformers.logging.set_verbosity_error()
    logging.getLogger("peft").setLevel(logging.ERROR)

"""`adapters-sft merge RUN_DIR --out DIR`: fold a run into a standalone model, drift-checked.

Exit status 1 (and nothing written) when the merged model drifts beyond the tolerance for its
dtype; 2 for bad input (unfinished run, damaged adapter, existing --out, bottleneck adapters).
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("merge", help="merge a run into a standalone model folder (safetensors), "
                                     "checked for drift")
    p.add_argument("run_dir", type=Path, help="a finished run directory")
    p.add_argument("--out", type=Path, required=True, help="folder to write")
    add_output_options(p, "weights dtype")
    p.set_defaults(run=run)


def add_output_options(p: argparse.ArgumentParser, what: str) -> None:
    """--dtype and --overwrite, shared with `export`."""
    p.add_argument("--dtype", default="auto", choices=("auto", "float32", "float16", "bfloat16"),
                   help=f"{what} (auto: the recipe's dtype, else the base checkpoint's)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def run(args: argparse.Namespace) -> int:
    from ..export.merge import merge_run
    from ..rundir import exclusive
    from .args import quiet_libraries

    quiet_libraries()
    with exclusive(args.out, "--out"):  # one writer per --out
        merge_run(args.run_dir, args.out, args.dtype, args.overwrite,
                  echo=lambda line: print(f"adapters-sft: {line}", flush=True))
    return 0

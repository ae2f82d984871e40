"""`adapters-sft export RUN_DIR --format peft|safetensors|gguf --out DIR`.

Every export is checked before it is kept: safetensors and gguf go through the merge drift
check, and a GGUF is read back with transformers and compared with the merged model. A failed
check exits with status 1 and leaves nothing behind.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..export.gguf_file import OUTTYPES
from ..export.llamacpp import KQUANTS
from .merge import add_output_options


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a run as a PEFT adapter, merged safetensors or GGUF")
    p.add_argument("run_dir", type=Path, help="a finished run directory")
    p.add_argument("--format", required=True, choices=("peft", "safetensors", "gguf"))
    p.add_argument("--out", type=Path, required=True, help="folder to write")
    p.add_argument("--outtype", default="f16", choices=(*OUTTYPES, *KQUANTS),
                   help="GGUF tensor type (default f16); the k-quants are made by llama.cpp's "
                        "quantizer (pip install 'adapters-sft[llamacpp]')")
    add_output_options(p, "safetensors weights dtype")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..export import export_run
    from ..rundir import exclusive
    from .args import quiet_libraries

    quiet_libraries()
    with exclusive(args.out, "--out"):  # one writer per --out
        export_run(args.run_dir, args.format, args.out, args.outtype, args.dtype, args.overwrite,
                   echo=lambda line: print(f"adapters-sft: {line}", flush=True))
    return 0

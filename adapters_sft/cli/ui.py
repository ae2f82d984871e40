"""`adapters-sft ui [FOLDER] [--port N] [--host 127.0.0.1] [--token T]`: a local web page for
the recipes and runs in FOLDER (default: here): validate and plan a recipe, train with a live
loss curve, stop and resume, compare runs, chat, merge and export (adapters_sft/ui/)."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    from .args import number

    p = sub.add_parser("ui", help="a local web page: recipes, training with live curves, runs, chat, export")
    p.add_argument("folder", nargs="?", default=".", type=Path,
                   help="where runs are listed and written (default: the current folder)")
    p.add_argument("--port", type=number(int, 0), default=7860, help="port to listen on (0: any free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; anything but loopback needs --token")
    p.add_argument("--token", help="an access token every request must carry (needed off loopback)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import UserError
    from ..ui.server import serve

    if not args.folder.is_dir():
        raise UserError(f"{args.folder}: not a folder; give the folder whose runs the UI shows")
    try:
        serve(args.folder, args.host, args.port, args.token,
              ready=lambda url: print(f"adapters-sft: UI for {args.folder.resolve()} at {url} "
                                      "(Ctrl-C stops the UI; training jobs go on)", flush=True))
    except KeyboardInterrupt:
        print()
    return 0

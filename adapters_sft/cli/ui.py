"""`adapters-sft ui [FOLDER] [--port N] [--host 127.0.0.1] [--token T | --no-token]`: a local web
page for the recipes and runs in FOLDER (default: here): validate and plan a recipe, train with
a live loss curve, stop and resume, compare runs, chat, merge and export (adapters_sft/ui/).
The URL it prints carries an access token made at start, as Jupyter's does."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    from .args import number

    p = sub.add_parser("ui", help="a local web page: recipes, training with live curves, runs, chat, export")
    p.add_argument("folder", nargs="?", default=".", type=Path,
                   help="where runs are listed and written (default: the current folder)")
    p.add_argument("--port", type=number(int, 0, high=65535), default=7860,
                   help="port to listen on (0: any free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; anything but loopback needs --token")
    p.add_argument("--token", help="the access token every request must carry (default: one made "
                                   "at start, shown in the URL)")
    p.add_argument("--no-token", action="store_true",
                   help="no access token on loopback: any local user or process can then use the UI")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import UserError
    from ..ui.server import serve

    if not args.folder.is_dir():
        raise UserError(f"{args.folder}: not a folder; give the folder whose runs the UI shows")
    if args.no_token and args.token:
        raise UserError("--no-token and --token: give one of them")
    if args.no_token:
        print("adapters-sft: warning: --no-token: any user or process on this machine can start "
              "training and read every run through the UI", file=sys.stderr, flush=True)
    try:
        serve(args.folder, args.host, args.port, args.token, require_token=not args.no_token,
              ready=lambda url: print(f"adapters-sft: UI for {args.folder.resolve()} at {url} "
                                      "(Ctrl-C stops the UI; training jobs go on)", flush=True))
    except KeyboardInterrupt:
        print()
    return 0

"""`adapters-sft VERB ...`: the list of verbs and the one place errors become exit codes.

A `UserError` prints as one line on stderr with exit status 2 and no traceback. Heavy
libraries are imported only inside the verbs that need them, so `--help`, `ls` and `show`
answer at once.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings

from ..errors import CheckFailed, Interrupted, UserError
from .args import OneLineParser
from . import chat, check, cp, eval, export, generate, ls, merge, plan, resume, show, train, ui, validate

VERBS = (ls, show, cp, validate, check, plan, train, resume, eval, generate, chat, merge, export, ui)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="adapters-sft",
        description="Fine-tune LLMs with interchangeable strategies. Start with "
                    "'adapters-sft ls', then 'adapters-sft train smollm2-135m/lora'.")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb in VERBS:
        verb.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may come after options too (`train R --nproc 2 output_dir=x`)
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    # bitsandbytes announces at import that an optional CPU kernel package is absent; the
    # fallback it uses is correct, and the notice would break our one-line errors.
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    # transformers 5 warns about its own renamed arguments (gradient_checkpointing) that TRL
    # still passes; users cannot act on those.
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        return int(args.run(args) or 0)
    except UserError as exc:
        print(f"adapters-sft: error: {exc}", file=sys.stderr)
        return 2
    except CheckFailed as exc:
        print(f"adapters-sft: failed: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `adapters-sft ls | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Interrupted as exc:
        print(f"adapters-sft: {exc}", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("adapters-sft: interrupted; nothing was written to the run directory", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

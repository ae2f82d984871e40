"""`adapters-sft eval RUN_DIR [--data PATH]`: score a finished run on held-out data.

Classifiers: accuracy, macro and per-class precision/recall/F1 and a confusion matrix
(printed, and saved as eval.json and confusion.png). Generative runs: loss, perplexity and
exact match (or `--metric package.module:function`), and what training cost the model on
general prompts (`--general`, scores/general.py). See adapters_sft/evaluation.py.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .args import number


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="score a run on its held-out split or --data: accuracy/F1/"
                                    "confusion matrix, or loss/perplexity/exact match")
    p.add_argument("run_dir", type=Path, help="a finished run directory")
    p.add_argument("--data", help="held-out rows to score instead of the run's own (same forms "
                                  "as data.train: a file, folder or builtin:NAME)")
    p.add_argument("--limit", type=number(int, 1), help="score only the first N rows")
    p.add_argument("--metric", default="exact_match",
                   help="generative runs: exact_match, or package.module:function called as "
                        "f(answer, reference) -> float")
    p.add_argument("--batch-size", type=number(int, 1), default=16)
    p.add_argument("--max-new-tokens", type=number(int, 1), help="generation budget (default: the recipe's)")
    p.add_argument("--general", type=_general, metavar="FILE|true|false",
                   help="generative runs: what training cost the model on general prompts, these "
                        "(JSONL with a 'prompt' per row, or one per line) instead of the recipe's "
                        "eval.general (default: the bundled ones); false skips it")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluation import evaluate_run, summary
    from ..registry import get_task
    from .args import quiet_libraries

    quiet_libraries()
    result = evaluate_run(args.run_dir, args.data, args.limit, args.metric, args.batch_size,
                          args.max_new_tokens, args.general)
    print(summary(result))
    print(f"adapters-sft: {get_task(result.task).eval_files} saved in {result.out}")
    return 0


def _general(value: str) -> bool | str:
    return {"true": True, "false": False}.get(value.lower(), value)

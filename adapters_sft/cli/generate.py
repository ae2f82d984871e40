"""`adapters-sft generate RUN_DIR|MODEL`: answer one prompt, or a JSONL file of prompts.

A run directory is used as trained (adapter on its base, no merge needed) with the chat
template saved at training time; a model folder, hub id or alias is used as it is.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from ..errors import UserError
from .args import number


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="answer a prompt (or a JSONL file of prompts) with a run or model")
    p.add_argument("model", help="run directory, or a model folder / hub id / alias")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", help="one user message")
    src.add_argument("--input", type=Path, help='JSONL: {"prompt": ...} or {"messages": [...]} per line')
    p.add_argument("--output", type=Path, help="JSONL to write (each input row plus 'answer')")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    p.add_argument("--max-new-tokens", type=number(int, 1), default=128)
    p.add_argument("--batch-size", type=number(int, 1), default=8)
    p.add_argument("--temperature", type=number(float, 0, inclusive=False),
                   help="sample instead of greedy decoding (above 0)")
    p.add_argument("--top-p", type=number(float, 0, inclusive=False, high=1))
    p.add_argument("--top-k", type=number(int, 1))
    p.add_argument("--seed", type=number(int, 0, high=2 ** 32 - 1), default=42, help="for sampling")
    p.set_defaults(run=run)


def read_prompts(path: Path) -> list[dict[str, Any]]:
    from ..data import iter_jsonl

    rows = []
    for lineno, row, bad_json in iter_jsonl(path, "--input"):
        if bad_json:
            raise UserError(f"{path}:{lineno}: {bad_json}; fix the line")
        ok = isinstance(row, dict) and (isinstance(row.get("prompt"), str) or (
            isinstance(row.get("messages"), list) and row["messages"]))
        if not ok:
            raise UserError(f"{path}:{lineno}: expected a 'prompt' string or a 'messages' list")
        rows.append(row)
    if not rows:
        raise UserError(f"--input: '{path}' holds no prompts")
    return rows


def _check_writable(output: Path) -> None:
    """Before any model loads: the answers must have somewhere to go."""
    folder = output.parent
    if output.is_dir():
        raise UserError(f"--output: '{output}' is a folder; give a file path such as answers.jsonl")
    if not folder.is_dir():
        raise UserError(f"--output: the folder '{folder}' does not exist (or is a file); create it "
                        "or choose another path")
    if not os.access(folder, os.W_OK):
        raise UserError(f"--output: cannot write in '{folder}'; choose a writable folder")
    from ..rundir import enclosing_run

    run = enclosing_run(folder.resolve())
    if run is not None:  # --overwrite could replace one of the run's own files
        raise UserError(f"--output: '{output}' is inside the run '{run}'; write answers outside "
                        "every run, e.g. answers.jsonl")


def run(args: argparse.Namespace) -> int:
    from .args import quiet_libraries

    if args.output and args.output.exists() and not args.overwrite:
        raise UserError(f"--output: '{args.output}' already exists; choose another path or add --overwrite")
    if args.input and not args.output:
        raise UserError("--output: needed with --input (where to write the answers)")
    if args.output:
        _check_writable(args.output)
    rows = read_prompts(args.input) if args.input else [{"prompt": args.prompt}]
    quiet_libraries()
    from transformers import set_seed

    from ..scores.generative import generate
    from ..run_reader import load_model_or_run

    model, tokenizer = load_model_or_run(args.model, "generate")
    chat = bool(tokenizer.chat_template)
    prompts = [r["messages"] if "messages" in r else
               ([{"role": "user", "content": r["prompt"]}] if chat else r["prompt"]) for r in rows]
    sampling: dict[str, Any] = {}
    if args.temperature is not None:
        set_seed(args.seed)
        sampling = {"do_sample": True, "temperature": args.temperature}
        sampling |= {k: v for k, v in (("top_p", args.top_p), ("top_k", args.top_k)) if v is not None}
    answers = generate(model, tokenizer, prompts, args.max_new_tokens, args.batch_size, **sampling)
    if not args.output:
        print(answers[0])
        return 0
    tmp = args.output.with_name(args.output.name + ".tmp")
    tmp.write_text("".join(json.dumps(r | {"answer": a}) + "\n" for r, a in zip(rows, answers)))
    os.replace(tmp, args.output)
    print(f"adapters-sft: wrote {len(answers)} answers to {args.output}")
    return 0

"""`adapters-sft eval RUN_DIR [--data PATH]`: score a finished run on held-out data.

Classification runs get the report of metrics.py (accuracy, macro and per-class P/R/F1,
confusion matrix); generative runs get the teacher-forced loss and perplexity on the target
tokens plus exact match (or a user metric) of greedy answers, where the rows carry a
reference answer. The data is the run's own held-out split unless `--data` names another
file, read with the run's format and column mapping. Results go to RUN_DIR/eval/NAME/
(eval.json, and confusion.png for classifiers), NAME being `eval` for the run's own split or
the data file's name; re-running the same evaluation replaces only that folder.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from .errors import UserError


@dataclasses.dataclass
class Evaluation:
    task: str
    report: dict[str, Any]
    out: Path
    rows: int


def held_out(recipe: Any, data: str | None, run: Path | None = None) -> tuple[Any, str]:
    """(Split, name) of the rows to score: --data, else the held-out rows saved with the run,
    else (runs from before they were saved) the recipe's data files."""
    from .data.formats import kind_of
    from .data.load import load_splits, read_split
    from .rundir import read_heldout

    if data:
        split, fmt = read_split(data, "--data", "auto", recipe.data.columns)
        return (split, kind_of(fmt)), Path(data.split(":")[-1]).stem or "data"
    saved = read_heldout(run) if run is not None else None
    if saved is not None:
        return saved, "eval"
    splits = load_splits(recipe)
    if splits.eval is None:
        raise UserError(f"{recipe.source}: the run has no held-out split (data.eval or data.val_size); "
                        "pass --data PATH")
    return (splits.eval, splits.kind), "eval"


def evaluate_run(run_dir: str | Path, data: str | None = None, limit: int | None = None,
                 metric: str = "exact_match", batch_size: int = 16,
                 max_new_tokens: int | None = None) -> Evaluation:
    from .runs import load_run

    model, tokenizer, recipe = load_run(run_dir)
    (split, kind), name = held_out(recipe, data, Path(run_dir))
    rows = split.rows[:limit]
    out = Path(run_dir) / "eval" / name
    if recipe.task == "classification":
        from .classify import evaluate, write_report

        if kind != "classification":
            raise UserError(f"--data: a classification run needs (text, label) rows, got {kind} data")
        report = evaluate(model, tokenizer, rows, recipe.data.max_length,
                          where=lambda i: split.where[i])
        write_report(report, out, f"{Path(run_dir).name} on {name}")
        return Evaluation("classification", report, out, len(rows))
    report = generative(model, tokenizer, recipe, rows, kind, metric, batch_size,
                        max_new_tokens or recipe.eval.max_new_tokens)
    from .rundir import write_json

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "eval.json", report)
    return Evaluation("sft", report, out, len(rows))


def generative(model: Any, tokenizer: Any, recipe: Any, rows: list[dict[str, Any]], kind: str,
               metric: str, batch_size: int, max_new_tokens: int) -> dict[str, Any]:
    """Loss and perplexity, then greedy answers scored where rows have a reference."""
    from . import evaluate
    from .data.tokenize import as_chat, conversational, tokenize
    from .trainer import training_args

    if kind == "classification":
        raise UserError("--data: (text, label) rows score a classifier; this run is generative")
    chat = conversational(kind, rows, tokenizer, recipe.data.template)
    rows = as_chat(rows) if chat else rows
    args = training_args(recipe, Path(recipe.output_dir) / "checkpoints", has_eval=True)
    dataset = tokenize(rows, kind, tokenizer, args, recipe.data.train_on_prompt)
    report: dict[str, Any] = evaluate.lm_loss(model, dataset, tokenizer.pad_token_id, batch_size)
    if kind != "text":
        report["answers"] = evaluate.exact_match(model, tokenizer, rows, max_new_tokens, batch_size, metric)
    return report


def summary(result: Evaluation) -> str:
    """What the verb prints."""
    if result.task == "classification":
        from .metrics import table

        return table(result.report)
    r = result.report
    lines = [f"loss {r['loss']:.4f}   perplexity {r['perplexity']:.3f}   "
             f"({r['tokens']} target tokens in {result.rows} rows)"]
    answers = r.get("answers")
    if answers and "exact_match" in answers:
        lines.append(f"exact match {answers['correct']}/{answers['total']} = {answers['exact_match']:.1%}")
    elif answers:
        lines.append(f"{answers['metric']} {answers['score']:.4f} (mean over {answers['total']} rows)")
    return "\n".join(lines)

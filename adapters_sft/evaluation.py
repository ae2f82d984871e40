"""`adapters-sft eval RUN_DIR [--data PATH]`: score a finished run on held-out data.

The run's task scores it (tasks/): classification runs get the report of scores/classification.py
(accuracy, macro and per-class P/R/F1, confusion matrix); generative runs get the
teacher-forced loss and perplexity on the target tokens plus exact match (or a user metric)
of greedy answers, where the rows carry a reference answer. The data is the run's own held-out split unless `--data` names another
file, read with the run's format and column mapping. Results go to RUN_DIR/evals/NAME/
(eval.json, and confusion.png for classifiers), NAME being `heldout` for the run's own split
or the data file's name: the only thing ever added to a finished run (README, "Run
directories"); re-running the same evaluation replaces only that folder.
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
    from .rundir import OWN_SPLIT, read_heldout

    if data:
        split, fmt = read_split(data, "--data", "auto", recipe.data.columns)
        name = Path(data.split(":")[-1]).stem or "data"
        return (split, kind_of(fmt)), f"{name}-file" if name == OWN_SPLIT else name
    saved = read_heldout(run) if run is not None else None
    if saved is not None:
        return saved, OWN_SPLIT
    splits = load_splits(recipe)
    if splits.eval is None:
        raise UserError(f"{recipe.source}: the run has no held-out split (data.eval or data.val_size); "
                        "pass --data PATH")
    return (splits.eval, splits.kind), OWN_SPLIT


def evaluate_run(run_dir: str | Path, data: str | None = None, limit: int | None = None,
                 metric: str = "exact_match", batch_size: int = 16,
                 max_new_tokens: int | None = None, general: bool | str | None = None) -> Evaluation:
    """`general`: the general probe's prompts (scores/general.py) instead of the recipe's
    eval.general: true (the bundled ones), a file, or false (none)."""
    from .registry import get_task
    from .rundir import EVAL, EVALS, write_json
    from .run_reader import load_run, open_run

    opened = open_run(run_dir)
    task = get_task(opened.recipe.task)
    spec = opened.recipe.eval.general if general is None else general
    key = "--general: " if general is not None else f"{opened.path}/recipe.yaml: eval.general: "
    reference = general_reference(opened, spec, key, batch_size) if task.generative and spec is not False \
        else None
    model, tokenizer, recipe = load_run(run_dir)
    (split, kind), name = held_out(recipe, data, Path(run_dir))
    rows = split.rows[:limit]
    out = Path(run_dir) / EVALS / name
    report = task.evaluate(
        model, tokenizer, recipe, rows, kind, lambda i: split.where[i], out,
        f"{Path(run_dir).name} on {name}", metric, batch_size, max_new_tokens or recipe.eval.max_new_tokens)
    if reference is not None:
        from .scores.general import compare

        report["general"] = compare(model, tokenizer, reference, batch_size)
        write_json(out / EVAL, report)
    return Evaluation(recipe.task, report, out, len(rows))


def general_reference(run: Any, spec: bool | str, key: str, batch_size: int) -> Any:
    """The general probe's reference for a finished run (run_reader.Opened): the one it was
    trained against where it holds one for these prompts, else taken from its starting model
    (its base, with the init_from run it continued restored on it), loaded on its own first."""
    from . import init_from
    from .loading import model_load_kwargs
    from .registry import get_task
    from .rundir import GENERAL
    from .scores import general

    prompts = general.load_prompts(spec, key)
    stored = general.load(run.path / GENERAL)
    if stored is not None and stored.prompts == prompts:
        return stored
    run.check_base()
    start = get_task(run.recipe.task).load_run_model(run, model_load_kwargs(run.recipe, run.strategy))
    earlier = init_from.check(run.recipe)
    if earlier is not None:
        start = earlier.strategy.restore(start, earlier.artifact)
    return general.reference_for(run.recipe, start.eval(), run.tokenizer, prompts, batch_size)


def summary(result: Evaluation) -> str:
    """What the verb prints."""
    from .registry import get_task
    from .scores.general import line

    text = get_task(result.task).summarise(result.report, result.rows)
    return text + (f"\n{line(result.report['general'])}" if result.report.get("general") else "")

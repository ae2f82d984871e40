"""Pre-flight checks: everything a user can get wrong in a recipe, its data or its strategy is
found here, cheaply, before any model loads and before anything is written; each problem is
one UserError naming the key or file:line and the fix."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .data.formats import PREFERENCE_KINDS
from .errors import UserError

if TYPE_CHECKING:
    from .data import Splits
    from .data.tokenize import Prepared
    from .recipe import Recipe


def load_data(recipe: Recipe) -> Splits:
    """The recipe's rows; in a process `train --nproc` started, the rows its launcher read."""
    from .data import handoff, load_splits

    folder = handoff.handed()
    return handoff.load_splits(folder) if folder is not None else load_splits(recipe)


def prepare_data(recipe: Recipe, splits: Splits, args: Any) -> Prepared:
    """Tokenizer and tokenized splits; the pre-flight problems are a UserError. No weights load.
    `args` is the run's Trainer config (training/args.py)."""
    from .registry import get_task

    from .data import handoff

    folder = handoff.handed()  # prepared once by the launching command (train --nproc)
    prepared = handoff.load(folder) if folder is not None else \
        get_task(recipe.task).tokenize(recipe, splits, args)
    if prepared.report.fatal:
        raise UserError(fatal_line(prepared.report))
    return prepared


def fatal_line(report: Any) -> str:
    """The one line train and check refuse tokenized data with."""
    return (f"data: {len(report.fatal)} problem(s): " + "; ".join(report.fatal)
            + "; `adapters-sft check` shows them with the rows")


def check_eval(recipe: Recipe, fmt: str) -> None:
    """Exact match needs held-out rows with a reference answer, accuracy labelled rows."""
    metric = recipe.eval.metric
    if metric == "none":
        return
    at = recipe.where("eval.metric")
    if not recipe.data.eval and recipe.data.val_size is None:
        raise UserError(f"{at}eval.metric: needs held-out data; set data.eval=PATH, data.val_size "
                        "or eval.metric=none")
    from .registry import get_task

    task = get_task(recipe.task)
    if task.generative and recipe.eval.general is not False:  # a bad prompts file, before training
        from .scores.general import load_prompts

        load_prompts(recipe.eval.general, recipe.where("eval.general") + "eval.general: ")
    rewarded = task.uses_rewards
    if (metric == "reward") != rewarded:
        raise UserError(f"{at}eval.metric: " + (f"task {recipe.task} is scored by its rewards; use "
                                                "eval.metric=reward (or none)" if rewarded else
                                                "reward scores runs that learn from rewards (task grpo); use "
                                                "exact_match, accuracy, preference or none"))
    if rewarded:
        return
    if metric == "preference" and fmt not in PREFERENCE_KINDS:
        raise UserError(f"{at}eval.metric: preference scores preference rows ((prompt, chosen, "
                        f"rejected) or (prompt, completion, label)), but the data is {fmt}; use "
                        "exact_match, accuracy or none")
    if metric in ("exact_match", "accuracy") and fmt in PREFERENCE_KINDS:
        raise UserError(f"{at}eval.metric: {metric} does not score {fmt} rows; use "
                        "eval.metric=preference (rewards and margin) or none")
    if metric == "exact_match" and fmt in ("text", "classification"):
        raise UserError(f"{at}eval.metric: exact_match needs a reference answer, which {fmt} data "
                        "has not; use messages or prompt-completion data, or eval.metric=none")
    if metric == "accuracy" and fmt != "classification":
        raise UserError(f"{at}eval.metric: accuracy scores a classifier on (text, label) rows, but "
                        f"the data is {fmt}; use eval.metric=exact_match for generative data")


@dataclasses.dataclass
class Ready:
    """What pre-flight built on its way, handed to the trainer so nothing is built twice."""
    splits: Splits
    strategy: Any                    # the recipe's strategy, its own checks passed
    args: Any = None                 # the Trainer's config (full rules only)
    start: Any = None                # the run init_from names (run_reader.Opened), or None
    prepared: Prepared | None = None  # the tokenized data (preflight(), after the rules)


def rules(recipe: Recipe, full: bool = True, checkpoints: Path | None = None,
          processes: int | None = None, echo: Callable[[str], Any] = lambda line: None) -> Ready:
    """Every refusal of a recipe and its data that needs no tokenizer and no weights, in one
    order, so `validate`, `check` and `train` refuse the same things with the same lines.
    `full` (check, train) also reads the model's config with transformers and builds the
    Trainer's config (writing checkpoints into `checkpoints`, by default the run's staging
    folder's), whose own cross-checks need their libraries imported (seconds); `validate` runs
    the rest in a fraction of one (training keys against a cached schema). `processes`: the
    command that is about to launch that many processes asks (train --nproc), not one of them."""
    from . import init_from
    from .training import low_rank, trainer_keys
    from .sharding import check_recipe
    from .processes import world_size
    from .loading import build_strategy
    from .models import check_model, load_config
    from .registry import get_task

    check_model(recipe.model)  # a bad alias, path or config.json
    check_recipe(recipe, processes or world_size(), launching=processes is not None)
    splits = load_data(recipe)
    task = get_task(recipe.task)
    task.check_data(recipe, splits.kind)
    task.check_recipe(recipe, splits)
    has_eval = splits.eval is not None
    trainer_keys.check_recipe(recipe, trainer_keys.schema(task), has_eval)
    strategy = build_strategy(recipe)
    strategy.preflight()
    strategy.check_processes(processes or world_size())
    low_rank.check(recipe.training, recipe.where, _own_groups(recipe, strategy))
    _one_optimizer_builder(recipe, strategy)
    check_eval(recipe, splits.kind)
    from .data import replay

    replay.check(recipe, splits.kind)
    start = init_from.check(recipe)
    if not full:
        return Ready(splits, strategy, None, start)
    from .rundir import CHECKPOINTS, partial_dir
    from .training.args import training_args  # what needs the libraries, after every cheap check

    load_config(recipe.model, recipe.trust_remote_code)
    if recipe.data.replay:  # the base model's answers: from the run, the cache, or made now
        from .rundir import REPLAY

        splits = replay.mix_in(recipe, splits, strategy, partial_dir(Path(recipe.output_dir)) / REPLAY, echo)
    checkpoints = checkpoints or partial_dir(Path(recipe.output_dir)) / CHECKPOINTS
    args = training_args(recipe, checkpoints, has_eval)
    strategy.check_training(args)
    return Ready(splits, strategy, args, start)


def _own_groups(recipe: Recipe, strategy: Any) -> str | None:
    """The key that asks for our own optimizer parameter groups (optim.py), if any."""
    if recipe.training_split[0].layer_lr_decay is not None:
        return "training.layer_lr_decay"
    if strategy.lr_scale() is not None:
        return "strategy.loraplus_lr_ratio"
    if getattr(strategy.opts, "unfreeze_every", None) is not None:
        return "strategy.unfreeze_every"
    own = strategy.builds_optimizer()  # BAdam
    if own:
        return own
    if not strategy.later_counted:  # its frozen blocks must sit in the optimizer (lisa)
        return f"strategy {strategy.name}"
    return None


def _one_optimizer_builder(recipe: Recipe, strategy: Any) -> None:
    """A strategy that builds its own optimizer groups (BAdam) leaves no room for ours, nor
    for a low-rank optimizer's."""
    from .training.low_rank import family

    own = strategy.builds_optimizer()
    clash = ("training.layer_lr_decay" if recipe.training_split[0].layer_lr_decay is not None else
             "training.optim" if family(recipe.training.get("optim")) else None)
    if own and clash:
        raise UserError(f"{recipe.where(own)}{own}: builds its own parameter groups, so {clash} "
                        "cannot apply; remove one of them")


def preflight(recipe: Recipe, echo: Callable[[str], Any], checkpoints: Path | None = None,
              processes: int | None = None) -> Ready:
    """Cheap checks first (rules): strategy, data and training keys fail before any model
    loads; then the tokenized data's own problems (check's report). The result holds all
    the trainer needs besides the model."""
    ready = rules(recipe, checkpoints=checkpoints, processes=processes, echo=echo)
    ready.prepared = prepared = prepare_data(recipe, ready.splits, ready.args)
    start = ready.start
    if start is not None and start.tokenizer.chat_template != prepared.tokenizer.chat_template:
        echo(f"warning: init_from: {start.path} was trained with another chat template than this "
             "recipe renders; set data.template as that run did")
    for warning in prepared.report.warnings:
        echo(f"warning: {warning}")
    if str(recipe.training.get("optim", "")).startswith("paged_"):
        echo(f"warning: training.optim={recipe.training['optim']}: bitsandbytes' paged optimizers "
             "are reported to fail when their state is loaded on resume (not checked here: they "
             "need a GPU); if this run may need resuming, prefer adamw_torch")
    return ready

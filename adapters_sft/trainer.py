"""The shared trainer: Recipe + Strategy -> TRL SFTTrainer -> run directory.

We build `SFTConfig` and `SFTTrainer` and hand them the model and, where the strategy has
one, the `peft_config`; the training loop is TRL's. Everything the user can get wrong is
checked before the model loads and before anything is written.

Defaults we choose over TRL's (a recipe's `training:` keys override them):
  gradient_checkpointing  off on CPU: it trades compute for memory, and small CPU runs are
                          compute-bound (TRL turns it on everywhere)
  bf16                    only on a CUDA GPU that supports it (TRL asks for it everywhere)
  logging_steps           5, so short runs still log
  save_strategy           no: a Trainer checkpoint holds the whole model and optimizer state,
                          which would defeat strategies that save only what they train; set
                          training.save_strategy=steps to keep resumable checkpoints
  disable_tqdm            False: the progress bar stays on even when library logs are quiet
"""
from __future__ import annotations

import dataclasses
import shutil
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .errors import UserError, did_you_mean
from .recipe import Recipe
from .typed import check_type

if TYPE_CHECKING:
    from .data import Splits
    from .data.tokenize import Prepared
    from .strategies.base import Strategy

# Keys the run owns; setting them under training: would split the truth in two.
_OWNED = {"output_dir": "output_dir", "seed": "seed", "max_length": "data.max_length",
          "assistant_only_loss": "data.train_on_prompt", "completion_only_loss": "data.train_on_prompt"}


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def sft_config(recipe: Recipe, output_dir: Path) -> Any:
    """`SFTConfig` from the recipe; unknown or mistyped `training.*` keys are UserErrors.
    The loss masks (assistant-only, completion-only) are applied when data/tokenize.py runs
    TRL's preparation before the model loads, so the trainer gets labels and both are off."""
    from trl import SFTConfig

    fields = {f.name: f for f in dataclasses.fields(SFTConfig) if f.init}
    hints = typing.get_type_hints(SFTConfig)
    for key, value in recipe.training.items():
        at = recipe.where(f"training.{key}")
        if key in _OWNED:
            raise UserError(f"{at}training.{key}: set by the recipe's '{_OWNED[key]}' key instead; "
                            f"remove it from training")
        if key not in fields:
            raise UserError(f"{at}training.{key}: not an SFTConfig option{did_you_mean(key, fields)}")
        if hints.get(key) in (int, float, bool, str, int | None, float | None, str | None):
            check_type(value, hints[key], f"training.{key}", recipe.where)
    import torch

    cuda = _cuda()
    values: dict[str, Any] = {
        "gradient_checkpointing": cuda, "bf16": cuda and torch.cuda.is_bf16_supported(),
        "logging_steps": 5, "save_strategy": "no", "save_total_limit": 2,
        "dataloader_pin_memory": cuda, "disable_tqdm": False, **recipe.training,
        "output_dir": str(output_dir), "seed": recipe.seed, "max_length": recipe.data.max_length,
        "assistant_only_loss": False, "completion_only_loss": False,
    }
    try:
        return SFTConfig(**values)
    except (ValueError, TypeError) as exc:
        reason = str(exc).strip().splitlines()[0][:300]
        keys = ", ".join(f"training.{k}" for k in recipe.training) or "its defaults"
        raise UserError(f"{recipe.where('training')}training: SFTConfig refused the settings "
                        f"({keys}): {reason}") from None


def load_data(recipe: Recipe) -> Splits:
    from .data import load_splits

    return load_splits(recipe)


def prepare_data(recipe: Recipe, splits: Splits, args: Any) -> Prepared:
    """Tokenizer and tokenized splits; the pre-flight problems are a UserError. No weights load.
    `args` is the run's SFTConfig (from `sft_config`)."""
    from .data.tokenize import prepare

    if splits.kind == "classification":
        raise UserError(f"{recipe.where('data.train')}data.train: holds classification rows "
                        "(text, label), which train a classification head, not a generative "
                        "model; use messages, prompt-completion or text data with this recipe")
    prepared = prepare(recipe, splits, args)
    if prepared.report.fatal:
        raise UserError("data: " + "; ".join(prepared.report.fatal)
                        + "; run `adapters-sft check` on the recipe for the full report")
    return prepared


def build_strategy(recipe: Recipe) -> Strategy:
    from .registry import get_strategy

    return get_strategy(recipe.strategy.name)(recipe.strategy)


def model_load_kwargs(recipe: Recipe, strategy: Any) -> dict[str, Any]:
    import torch

    cuda = _cuda()
    kwargs: dict[str, Any] = {}
    if recipe.dtype != "auto":
        kwargs["dtype"] = getattr(torch, recipe.dtype)
    elif cuda:
        kwargs["dtype"] = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        kwargs["dtype"] = torch.float32
    if cuda:
        kwargs["device_map"] = {"": 0}
    kwargs.update(strategy.load_options())
    return kwargs


def build_trainer(recipe: Recipe, work_dir: Path, callbacks: list[Any] | None = None,
                  data: tuple[Splits, Prepared] | None = None) -> tuple[Any, Any, Splits]:
    """(trainer, strategy, splits) ready to train; nothing is written outside `work_dir`.
    `data` is what `load_data` and `prepare_data` returned, when the caller has them."""
    from transformers import set_seed
    from trl import SFTTrainer

    from .models import load_model

    strategy = build_strategy(recipe)
    args = sft_config(recipe, work_dir / "checkpoints")
    if data is None:
        splits = load_data(recipe)
        data = splits, prepare_data(recipe, splits, args)
    splits, prepared = data
    tokenizer = prepared.tokenizer
    if tokenizer.eos_token != args.eos_token and recipe.data.template not in ("auto", "none"):
        # a named template's end-of-turn became the EOS; TRL puts it in the generation config too
        args = dataclasses.replace(args, eos_token=tokenizer.eos_token)
    model = load_model(recipe.model, model_load_kwargs(recipe, strategy), recipe.trust_remote_code)
    set_seed(recipe.seed)  # adapters are initialised in prepare(), before SFTTrainer seeds
    ready = strategy.prepare(model)
    trainer = SFTTrainer(
        model=ready.model, args=args, train_dataset=prepared.train, eval_dataset=prepared.eval,
        processing_class=tokenizer, peft_config=ready.peft_config, callbacks=callbacks or [])
    strategy.after_trainer(trainer)
    return trainer, strategy, splits


@dataclasses.dataclass
class RunResult:
    run_dir: Path
    scores: dict[str, Any]
    trainer: Any  # the SFTTrainer, holding the trained model


def train(recipe: Recipe, echo: Callable[[str], Any] = print) -> RunResult:
    """Train `recipe` into its run directory."""
    from . import rundir

    out = Path(recipe.output_dir)
    rundir.check_target(out, recipe.overwrite)
    # Cheap checks first: strategy, data and training keys fail before any model loads.
    splits = load_data(recipe)
    args = sft_config(recipe, out / "checkpoints")
    build_strategy(recipe).preflight()
    check_eval(recipe, splits.kind)
    prepared = prepare_data(recipe, splits, args)
    for warning in prepared.report.warnings:
        echo(f"warning: {warning}")
    echo(f"training '{recipe.name}' with strategy '{recipe.strategy.name}' on {recipe.model} -> {out}")
    work = rundir.staging_dir(out)
    try:
        trainer, scores = _train_in(recipe, work, echo, (splits, prepared))
        rundir.commit(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)  # a failed run leaves nothing behind
        raise
    return RunResult(out, scores, trainer)


def check_eval(recipe: Recipe, fmt: str) -> None:
    """Exact match needs held-out rows with a reference answer."""
    if recipe.eval.metric == "none":
        return
    at = recipe.where("eval.metric")
    if not recipe.data.eval and recipe.data.val_size is None:
        raise UserError(f"{at}eval.metric: needs held-out data; set data.eval=PATH, data.val_size "
                        "or eval.metric=none")
    if fmt in ("text", "classification"):
        raise UserError(f"{at}eval.metric: exact_match needs a reference answer, which {fmt} data "
                        "has not; use messages or prompt-completion data, or eval.metric=none")


def _train_in(recipe: Recipe, work: Path, echo: Callable[[str], Any],
              data: tuple[Splits, Prepared]) -> tuple[Any, dict[str, Any]]:
    from . import evaluate, rundir

    out = Path(recipe.output_dir)
    metrics = rundir.MetricsWriter(work / "metrics.jsonl")
    trainer, strategy, splits = build_trainer(recipe, work, [metrics.as_callback()], data)
    eval_rows = splits.eval.rows if splits.eval else []
    if data[1].chat:  # held-out prompts go through the template exactly as training rows did
        from .data.tokenize import as_chat

        eval_rows = as_chat(eval_rows)
    tokenizer = trainer.processing_class
    scores: dict[str, Any] = {}

    def score(label: str) -> None:
        rows = eval_rows[: recipe.eval.limit]  # limit None keeps every row
        result = evaluate.exact_match(trainer.model, tokenizer, rows, recipe.eval.max_new_tokens,
                                      recipe.eval.batch_size)
        scores[label] = result
        echo(f"held-out exact match {label} training: {result['correct']}/{result['total']} "
             f"= {result['exact_match']:.1%}")

    if recipe.eval.metric == "exact_match" and recipe.eval.before_training:
        score("before")
    result = trainer.train()
    metrics.write({"step": trainer.state.global_step, "train_runtime": result.metrics.get("train_runtime"),
                   "train_loss": result.training_loss, "final": True})
    if recipe.eval.metric == "exact_match":
        score("after")
        rundir.write_json(work / "eval.json", scores)
    strategy.save(trainer.model, work / strategy.artifact)
    tokenizer.save_pretrained(work / "tokenizer")
    # Saved with overwrite=false: re-running a saved recipe must never replace a run silently.
    rundir.write_recipe(work / "recipe.yaml", {**recipe.to_dict(), "output_dir": str(out),
                                               "overwrite": False}, out / "recipe.yaml")
    return trainer, scores


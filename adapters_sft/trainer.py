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
from .recipe import Recipe, resolve_data_path
from .typed import check_type

if TYPE_CHECKING:
    from .strategies.base import Strategy

# Keys the run owns; setting them under training: would split the truth in two.
_OWNED = {"output_dir": "output_dir", "seed": "seed", "max_length": "data.max_length",
          "assistant_only_loss": "data.train_on_prompt", "completion_only_loss": "data.train_on_prompt"}


# (train rows, held-out rows or None, format name)
Data = tuple[list[dict[str, Any]], list[dict[str, Any]] | None, str]


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def sft_config(recipe: Recipe, output_dir: Path, fmt: str) -> Any:
    """`SFTConfig` from the recipe; unknown or mistyped `training.*` keys are UserErrors."""
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
        "assistant_only_loss": fmt == "messages" and not recipe.data.train_on_prompt,
        "completion_only_loss": fmt == "prompt-completion" and not recipe.data.train_on_prompt,
    }
    try:
        return SFTConfig(**values)
    except (ValueError, TypeError) as exc:
        reason = str(exc).strip().splitlines()[0][:300]
        keys = ", ".join(f"training.{k}" for k in recipe.training) or "its defaults"
        raise UserError(f"{recipe.where('training')}training: SFTConfig refused the settings "
                        f"({keys}): {reason}") from None


def load_data(recipe: Recipe) -> Data:
    from .data import read_rows

    def read(key: str, ref: str, fmt: str) -> tuple[list[dict[str, Any]], str]:
        located = recipe.where(key) + key
        return read_rows(resolve_data_path(ref, located), located, fmt)

    train_rows, fmt = read("data.train", recipe.data.train, recipe.data.format)
    eval_rows = read("data.eval", recipe.data.eval, fmt)[0] if recipe.data.eval else None
    return train_rows, eval_rows, fmt


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
                  data: Data | None = None) -> tuple[Any, Any, Any]:
    """(trainer, strategy, data) ready to train; nothing is written outside `work_dir`.
    `data` is what `load_data(recipe)` returned, when the caller has already read it."""
    from transformers import set_seed
    from trl import SFTTrainer

    from .chat_template import training_template
    from .data import to_dataset
    from .models import load_model, load_tokenizer

    strategy = build_strategy(recipe)
    train_rows, eval_rows, fmt = data or load_data(recipe)
    args = sft_config(recipe, work_dir / "checkpoints", fmt)
    tokenizer = load_tokenizer(recipe.model, recipe.trust_remote_code)
    if fmt == "messages" and not recipe.data.train_on_prompt:
        tokenizer.chat_template = training_template(tokenizer)
    model = load_model(recipe.model, model_load_kwargs(recipe, strategy), recipe.trust_remote_code)
    set_seed(recipe.seed)  # adapters are initialised in prepare(), before SFTTrainer seeds
    prepared = strategy.prepare(model)
    trainer = SFTTrainer(
        model=prepared.model, args=args, train_dataset=to_dataset(train_rows, fmt),
        eval_dataset=to_dataset(eval_rows, fmt) if eval_rows else None,
        processing_class=tokenizer, peft_config=prepared.peft_config, callbacks=callbacks or [])
    strategy.after_trainer(trainer)
    return trainer, strategy, (train_rows, eval_rows, fmt)


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
    data = load_data(recipe)
    sft_config(recipe, out / "checkpoints", data[2])
    build_strategy(recipe).preflight()
    check_eval(recipe, data[2])
    echo(f"training '{recipe.name}' with strategy '{recipe.strategy.name}' on {recipe.model} -> {out}")
    work = rundir.staging_dir(out)
    try:
        trainer, scores = _train_in(recipe, work, echo, data)
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
    if not recipe.data.eval:
        raise UserError(f"{at}eval.metric: needs held-out data; set data.eval=PATH or eval.metric=none")
    if fmt == "text":
        raise UserError(f"{at}eval.metric: exact_match needs a reference answer, which text data "
                        "has not; use messages or prompt-completion data, or eval.metric=none")


def _train_in(recipe: Recipe, work: Path, echo: Callable[[str], Any], data: Data) -> tuple[Any, dict[str, Any]]:
    from . import evaluate, rundir

    out = Path(recipe.output_dir)
    metrics = rundir.MetricsWriter(work / "metrics.jsonl")
    trainer, strategy, (_, eval_rows, _) = build_trainer(recipe, work, [metrics.as_callback()], data)
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


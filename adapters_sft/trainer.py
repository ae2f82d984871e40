"""The shared trainer: Recipe + Strategy -> TRL SFTTrainer -> run directory.

We build `SFTConfig` and `SFTTrainer` and hand them the model and, where the strategy has
one, the `peft_config`; the training loop is TRL's. Everything the user can get wrong is
checked before the model loads and before anything is written.

Defaults we choose over TRL's (a recipe's `training:` keys override them):
  gradient_checkpointing  off on CPU: it trades compute for memory, and small CPU runs are
                          compute-bound (TRL turns it on everywhere)
  bf16                    only on a CUDA GPU that supports it (TRL asks for it everywhere)
  logging_steps           5, so short runs still log
  save_strategy           no: resumable checkpoints follow the recipe's `checkpoint:` section
                          (checkpoints.py: what trained, optimizer, RNG; every 10 minutes by
                          default); training.save_strategy=steps also keeps them after the run
  disable_tqdm            False: the progress bar stays on even when library logs are quiet
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .errors import Interrupted, UserError
from .recipe import Recipe

if TYPE_CHECKING:
    from .data import Splits
    from .data.tokenize import Prepared
    from .strategies.base import Strategy

def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def training_args(recipe: Recipe, output_dir: Path, has_eval: bool = False) -> Any:
    """The Trainer's config from the recipe: TRL's `SFTConfig`, or for classification
    transformers' `TrainingArguments`; unknown or mistyped `training.*` keys are UserErrors.
    Our own keys (knobs.py) are taken out first and fill in the defaults they imply.
    The loss masks (assistant-only, completion-only) are applied when data/tokenize.py runs
    TRL's preparation before the model loads, so the trainer gets labels and both are off."""
    from . import knobs, training_keys

    sft = recipe.task == "sft"
    if sft:
        from trl import SFTConfig as config_cls
    else:
        from transformers import TrainingArguments as config_cls
    ours, training = knobs.split(recipe)
    training_keys.check(training, config_cls, knobs.KEYS, recipe.where)
    training_keys.check_reporters(training, recipe.where)
    training_keys.check_evaluation(training, has_eval, recipe.where)
    import torch

    cuda = _cuda()
    values: dict[str, Any] = {
        "gradient_checkpointing": cuda, "bf16": cuda and torch.cuda.is_bf16_supported(),
        "logging_steps": 5, "save_strategy": "no",
        "dataloader_pin_memory": cuda, "disable_tqdm": False,
        **knobs.config_defaults(recipe, ours, has_eval), **training,
        "output_dir": str(output_dir), "seed": recipe.seed,
        "save_total_limit": None,  # checkpoints.rotate keeps checkpoint.keep, after marking
        "restore_callback_states_from_checkpoint": True,  # early stopping's patience, on resume
    }
    if sft:
        values.update(max_length=recipe.data.max_length, assistant_only_loss=False,
                      completion_only_loss=False)
    else:  # classifiers here are small, and checkpointing a partly frozen body needs care
        values["gradient_checkpointing"] = training.get("gradient_checkpointing", False)
    try:
        return config_cls(**values)
    except (ValueError, TypeError) as exc:
        reason = str(exc).strip().splitlines()[0][:300]
        keys = ", ".join(f"training.{k}" for k in recipe.training) or "its defaults"
        raise UserError(f"{recipe.where('training')}training: {config_cls.__name__} refused the "
                        f"settings ({keys}): {reason}") from None


def load_data(recipe: Recipe) -> Splits:
    from .data import load_splits

    return load_splits(recipe)


def prepare_data(recipe: Recipe, splits: Splits, args: Any) -> Prepared:
    """Tokenizer and tokenized splits; the pre-flight problems are a UserError. No weights load.
    `args` is the run's SFTConfig (from `training_args`)."""
    from .data.tokenize import prepare

    check_task(recipe, splits.kind)
    prepared = prepare(recipe, splits, args)
    if prepared.report.fatal:
        raise UserError("data: " + "; ".join(prepared.report.fatal)
                        + "; run `adapters-sft check` on the recipe for the full report")
    return prepared


def check_task(recipe: Recipe, kind: str) -> None:
    """Classification rows train a classifier, anything else a generative model."""
    if (kind == "classification") == (recipe.task == "classification"):
        return
    if kind == "classification":
        raise UserError(f"{recipe.where('data.train')}data.train: holds classification rows "
                        "(text, label), which train a classification head; set task=classification, "
                        "or use messages, prompt-completion or text data")
    raise UserError(f"{recipe.where('task')}task: classification needs (text, label) rows, but "
                    f"data.train holds {kind} data; give classification data or set task=sft")


def build_strategy(recipe: Recipe) -> Strategy:
    from .registry import get_strategy

    return get_strategy(recipe.strategy.name)(recipe.strategy)


def model_load_kwargs(recipe: Recipe, strategy: Any) -> dict[str, Any]:
    import torch

    from . import knobs

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
    dropout = knobs.split(recipe)[0].dropout
    if dropout is not None:
        from .models import load_config

        config = load_config(recipe.model, recipe.trust_remote_code)
        kwargs.update(knobs.dropout_overrides(config, dropout))
    return kwargs


def build_trainer(recipe: Recipe, work_dir: Path, callbacks: list[Any] | None = None,
                  data: tuple[Splits, Prepared] | None = None) -> tuple[Any, Any, Splits]:
    """(trainer, strategy, splits) ready to train; nothing is written outside `work_dir`.
    `data` is what `load_data` and `prepare_data` returned, when the caller has them.
    Generative runs get TRL's SFTTrainer, classification runs transformers' Trainer."""
    from transformers import set_seed

    from . import knobs
    from .models import load_model

    strategy = build_strategy(recipe)
    if data is None:
        splits = load_data(recipe)
        data = splits, prepare_data(recipe, splits, training_args(recipe, work_dir / "checkpoints",
                                                                  splits.eval is not None))
    splits, prepared = data
    args = training_args(recipe, work_dir / "checkpoints", splits.eval is not None)
    ours = knobs.split(recipe)[0]
    callbacks = [*(callbacks or []), *knobs.callbacks(ours)]
    tokenizer = prepared.tokenizer
    load_kwargs = model_load_kwargs(recipe, strategy)
    if recipe.task == "classification":
        from .classify import build_trainer as classification_trainer, load_classifier

        set_seed(recipe.seed)  # the new head is initialised as the model loads
        model = load_classifier(recipe.model, load_kwargs, prepared.labels, tokenizer,
                                recipe.trust_remote_code)
        set_seed(recipe.seed)  # and any adapter in prepare()
        trainer = classification_trainer(model, strategy, args, prepared, callbacks)
    else:
        from trl import SFTTrainer

        from .durable import durable

        if tokenizer.eos_token != args.eos_token and recipe.data.template not in ("auto", "none"):
            # a named template's end-of-turn became the EOS; TRL puts it in the generation config too
            args = dataclasses.replace(args, eos_token=tokenizer.eos_token)
        model = load_model(recipe.model, load_kwargs, recipe.trust_remote_code)
        set_seed(recipe.seed)  # adapters are initialised in prepare(), before SFTTrainer seeds
        ready = strategy.prepare(model)
        trainer = durable(SFTTrainer)(
            model=ready.model, args=args, train_dataset=prepared.train, eval_dataset=prepared.eval,
            processing_class=tokenizer, peft_config=ready.peft_config, callbacks=callbacks)
    trainer.keep_checkpoints = recipe.checkpoint.keep
    strategy.after_trainer(trainer)
    knobs.install_optimizer(trainer, ours, strategy)
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
    with rundir.exclusive(out):  # held until the run is committed or given up
        return _train_exclusive(recipe, out, echo)


def _train_exclusive(recipe: Recipe, out: Path, echo: Callable[[str], Any]) -> RunResult:
    from . import checkpoints, resume_run, rundir

    rundir.check_target(out, recipe.overwrite)
    found, _ = checkpoints.latest(rundir.partial_dir(out) / "checkpoints")
    if found is not None and not recipe.overwrite:
        raise UserError(f"output_dir: '{out}' has an interrupted run with a checkpoint at step "
                        f"{checkpoints.step_of(found)}; continue it with 'adapters-sft resume {out}', "
                        "or add overwrite=true to discard it and start over")
    data = preflight(recipe, echo)
    echo(f"training '{recipe.name}' with strategy '{recipe.strategy.name}' on {recipe.model} -> {out}")
    work = rundir.staging_dir(out)
    rundir.write_recipe(work / "recipe.yaml", saved_recipe(recipe), out / "recipe.yaml")
    rundir.write_json(work / resume_run.FINGERPRINT, resume_run.fingerprint(recipe, data[0]))
    rundir.write_heldout(work, data[0])
    return run_in(recipe, work, echo, data)


def saved_recipe(recipe: Recipe) -> dict[str, Any]:
    # Saved with overwrite=false: re-running a saved recipe must never replace a run silently;
    # data paths absolute, so it means the same files from any folder.
    from .rundir import portable_paths

    return portable_paths({**recipe.to_dict(), "output_dir": recipe.output_dir, "overwrite": False})


def preflight(recipe: Recipe, echo: Callable[[str], Any]) -> tuple[Splits, Prepared]:
    """Cheap checks first: strategy, data and training keys fail before any model loads."""
    from .models import load_config

    load_config(recipe.model, recipe.trust_remote_code)  # a bad alias, path or config.json
    splits = load_data(recipe)
    args = training_args(recipe, Path(recipe.output_dir) / "checkpoints", splits.eval is not None)
    build_strategy(recipe).preflight()
    check_eval(recipe, splits.kind)
    prepared = prepare_data(recipe, splits, args)
    for warning in prepared.report.warnings:
        echo(f"warning: {warning}")
    if str(recipe.training.get("optim", "")).startswith("paged_"):
        echo(f"warning: training.optim={recipe.training['optim']}: bitsandbytes' paged optimizers "
             "are reported to fail when their state is loaded on resume (not checked here: they "
             "need a GPU); if this run may need resuming, prefer adamw_torch")
    return splits, prepared


def run_in(recipe: Recipe, work: Path, echo: Callable[[str], Any], data: tuple[Splits, Prepared],
           resume_from: Path | None = None) -> RunResult:
    """Train in the staging folder `work` (from a checkpoint, if given) and commit the run.
    A run that stops keeps its staging folder only if it holds a complete checkpoint."""
    from . import checkpoints, rundir

    out = Path(recipe.output_dir)
    try:
        trainer, scores = _train_in(recipe, work, echo, data, resume_from)
        rundir.commit(work, out)
    except BaseException as exc:
        found, _ = checkpoints.latest(work / "checkpoints")
        if found is None:
            shutil.rmtree(work, ignore_errors=True)  # nothing to continue from: leave nothing
        elif not isinstance(exc, (Interrupted, UserError)):
            echo(f"the run stopped ({type(exc).__name__}); its checkpoint at step "
                 f"{checkpoints.step_of(found)} is kept: continue with 'adapters-sft resume {out}'")
        raise
    return RunResult(out, scores, trainer)


def check_eval(recipe: Recipe, fmt: str) -> None:
    """Exact match needs held-out rows with a reference answer, accuracy labelled rows."""
    metric = recipe.eval.metric
    if metric == "none":
        return
    at = recipe.where("eval.metric")
    if not recipe.data.eval and recipe.data.val_size is None:
        raise UserError(f"{at}eval.metric: needs held-out data; set data.eval=PATH, data.val_size "
                        "or eval.metric=none")
    if metric == "exact_match" and fmt in ("text", "classification"):
        raise UserError(f"{at}eval.metric: exact_match needs a reference answer, which {fmt} data "
                        "has not; use messages or prompt-completion data, or eval.metric=none")
    if metric == "accuracy" and fmt != "classification":
        raise UserError(f"{at}eval.metric: accuracy scores a classifier on (text, label) rows, but "
                        f"the data is {fmt}; use eval.metric=exact_match for generative data")


def _train_in(recipe: Recipe, work: Path, echo: Callable[[str], Any],
              data: tuple[Splits, Prepared], resume_from: Path | None) -> tuple[Any, dict[str, Any]]:
    from . import checkpoints, durable, evaluate, rundir

    out = Path(recipe.output_dir)
    metrics = rundir.MetricsWriter(work / "metrics.jsonl")
    logger = metrics.as_callback()
    stop = durable.StopRequest()
    schedule = durable.schedule_callback(recipe.checkpoint, stop)
    trainer, strategy, splits = build_trainer(recipe, work, [logger, schedule], data)
    eval_rows = splits.eval.rows if splits.eval else []
    if data[1].chat:  # held-out prompts go through the template exactly as training rows did
        from .data.tokenize import as_chat

        eval_rows = as_chat(eval_rows)
    tokenizer = trainer.processing_class
    # the before-training score of an interrupted run was saved when it was taken
    scores: dict[str, Any] = rundir.read_json(work / "eval.json") if resume_from and \
        (work / "eval.json").is_file() else {}

    def score(label: str) -> None:
        rows = eval_rows[: recipe.eval.limit]  # limit None keeps every row
        if recipe.eval.metric == "accuracy":
            from .classify import evaluate as classification_eval

            scores[label] = report = classification_eval(trainer.model, tokenizer, rows,
                                                         recipe.data.max_length)
            echo(f"held-out {label} training: accuracy {report['accuracy']:.1%}, macro F1 "
                 f"{report['macro_f1']:.3f} ({report['total']} rows)")
            return
        result = evaluate.exact_match(trainer.model, tokenizer, rows, recipe.eval.max_new_tokens,
                                      recipe.eval.batch_size)
        scores[label] = result
        echo(f"held-out exact match {label} training: {result['correct']}/{result['total']} "
             f"= {result['exact_match']:.1%}")

    if recipe.eval.metric != "none" and recipe.eval.before_training and "before" not in scores:
        score("before")
        rundir.write_json(work / "eval.json", scores)
    with durable.stop_on_signals(stop):
        result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    state = trainer.state
    if stop.signum is not None and state.global_step < state.max_steps:
        found, _ = checkpoints.latest(work / "checkpoints")
        if found is None:
            raise Interrupted(f"stopped by {stop.name} at step {state.global_step}; no checkpoint "
                              "was written, so nothing was kept", stop.signum)
        raise Interrupted(f"stopped by {stop.name} at step {state.global_step}; checkpoint of step "
                          f"{checkpoints.step_of(found)} saved in {found}; continue with "
                          f"'adapters-sft resume {out}'", stop.signum)
    if stop.signum is not None:
        echo(f"{stop.name} arrived after the last training step; finishing the run")
    metrics.write({"step": state.global_step, "train_runtime": result.metrics.get("train_runtime"),
                   "train_loss": trainer.run_train_loss(), "final": True})
    if recipe.eval.metric != "none":
        score("after")
        rundir.write_json(work / "eval.json", scores)
    if recipe.eval.metric == "accuracy":
        from .metrics import draw_confusion

        draw_confusion(scores["after"], work / "confusion.png")
    strategy.save(trainer.model, work / strategy.artifact)
    tokenizer.save_pretrained(work / "tokenizer")
    if data[1].labels is not None:  # the classes, in id order, for loading the run back
        rundir.write_json(work / "labels.json", [str(x) for x in data[1].labels])
    rundir.write_recipe(work / "recipe.yaml", saved_recipe(recipe), out / "recipe.yaml")
    if recipe.training.get("save_strategy", "no") == "no":  # crash insurance, or made for the best
        shutil.rmtree(work / "checkpoints", ignore_errors=True)  # model: the run is complete now
    trainer.remove_callback(logger)  # the staging folder is renamed; later evaluate() calls only print
    return trainer, scores


"""The shared trainer: Recipe + Strategy + Task -> the task's Trainer -> run directory.

The run's task (tasks/) builds its Trainer (TRL's SFTTrainer for `sft`) around the model the
strategy prepared; the training loop is the Trainer's. Before anything loads or is written,
preflight.py checks the recipe, data and strategy; training/args.py builds the config.
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator

from .errors import Interrupted, UserError
from .recipe import Recipe
from .rundir import CHECKPOINTS

if TYPE_CHECKING:
    from .data import Splits
    from .preflight import Ready


def build_trainer(recipe: Recipe, work_dir: Path, callbacks: list[Any] | None = None,
                  ready: Ready | None = None) -> tuple[Any, Any, Splits]:
    """(trainer, strategy, splits) ready to train; nothing is written outside `work_dir`.
    `ready` is what pre-flight built for checkpoints in `work_dir` (the strategy, the Trainer's
    config, the tokenized data); without it, pre-flight runs here, quietly."""
    from . import sharding
    from .loading import model_load_kwargs
    from .preflight import preflight
    from .registry import get_task
    from .training import own_keys

    ready = ready or preflight(recipe, lambda line: None, work_dir / CHECKPOINTS)
    strategy, args = ready.strategy, ready.args
    if Path(args.output_dir) != work_dir / CHECKPOINTS:  # a caller's mistake, never a user's
        raise RuntimeError(f"pre-flight built the Trainer's config for {args.output_dir}, not "
                           f"{work_dir / CHECKPOINTS}")
    ours = recipe.training_split[0]
    callbacks = [*(callbacks or []), *own_keys.callbacks(ours)]
    load = sharding.load_values(recipe, model_load_kwargs(recipe, strategy))
    trainer = get_task(recipe.task).build_trainer(recipe, strategy, args, ready.prepared, callbacks,
                                                  load)
    sharding.verify(trainer, recipe)
    trainer.keep_checkpoints = recipe.checkpoint.keep
    trainer.strategy = strategy  # its checkpoint state, if any (checkpoint_trainer.py)
    strategy.after_trainer(trainer)
    own_keys.install_optimizer(trainer, ours, strategy)
    from . import tiled_mlp

    tiled_mlp.apply(trainer.model, ours.mlp_tile_tokens, recipe.where("training.mlp_tile_tokens") +
                    "training.mlp_tile_tokens: ")
    return trainer, strategy, ready.splits


@dataclasses.dataclass
class RunResult:
    run_dir: Path
    scores: dict[str, Any]
    trainer: Any  # the task's Trainer, holding the trained model
    task: str = "sft"
    cost: dict[str, Any] = dataclasses.field(default_factory=dict)  # measure.py: tokens/s, padding, memory


def train(recipe: Recipe, echo: Callable[[str], Any] = print,
          gate: Callable[[Ready], None] | None = None) -> RunResult:
    """Train `recipe` into its run directory. `gate(ready)`, once the data is prepared and
    before any model loads or anything is written, may refuse the run (the CLI's memory plan)."""
    from . import rundir

    from .processes import is_main, main_only

    out = Path(recipe.output_dir)
    if not is_main():  # the main process holds the folder for all of them
        return _train_exclusive(recipe, out, main_only(echo), gate)
    with rundir.exclusive(out):  # held until the run is committed or given up
        return _train_exclusive(recipe, out, echo, gate)


def _train_exclusive(recipe: Recipe, out: Path, echo: Callable[[str], Any],
                     gate: Callable[[Ready], None] | None = None) -> RunResult:
    from . import checkpoints, rundir
    from .fingerprint import fingerprint
    from .preflight import preflight

    rundir.check_target(out, recipe.overwrite)
    found, _ = checkpoints.latest(rundir.partial_dir(out) / CHECKPOINTS)
    if found is not None and not recipe.overwrite:
        raise UserError(f"output_dir: '{out}' has an interrupted run with a checkpoint at step "
                        f"{checkpoints.step_of(found)}; continue it with 'adapters-sft resume {out}', "
                        "or add overwrite=true to discard it and start over")
    from .processes import barrier, is_main

    ready = preflight(recipe, echo)
    if gate is not None:
        gate(ready)
    echo(f"training '{recipe.name}' with strategy '{recipe.strategy.name}' on {recipe.model} -> {out}")
    if not is_main():
        barrier()  # the main process has made the staging folder
        return run_in(recipe, rundir.partial_dir(out), echo, ready)
    work = rundir.staging_dir(out)
    rundir.write_recipe(work / rundir.RECIPE, saved_recipe(recipe), out / rundir.RECIPE)
    rundir.write_json(work / rundir.FINGERPRINT, fingerprint(recipe, ready.splits))
    rundir.write_heldout(work, ready.splits)
    rundir.write_replay(work, ready.splits)
    barrier()
    return run_in(recipe, work, echo, ready)


def saved_recipe(recipe: Recipe) -> dict[str, Any]:
    # Saved with overwrite=false: re-running a saved recipe must never replace a run silently;
    # data paths absolute, so it means the same files from any folder.
    from .rundir import portable_paths

    return portable_paths({**recipe.to_dict(), "output_dir": recipe.output_dir, "overwrite": False})


def run_in(recipe: Recipe, work: Path, echo: Callable[[str], Any], ready: Ready,
           resume_from: Path | None = None) -> RunResult:
    """Train in the staging folder `work` (from a checkpoint, if given) and commit the run.
    A run that stops keeps its staging folder only if it holds a complete checkpoint."""
    from . import checkpoints, rundir
    from .processes import barrier, is_main

    out = Path(recipe.output_dir)
    if not is_main():  # trains and scores as the main process does; writes and commits nothing
        trainer, scores, cost = _train_in(recipe, work, echo, ready, resume_from)
        barrier()  # an unscored run is the main process's to report, once it is committed: an
        # error here would end this process first, and the launcher would stop the main one mid-commit
        return RunResult(out, scores, trainer, recipe.task, cost)

    def resumable(folder: Path) -> bool:  # else nothing to continue from: leave nothing
        return checkpoints.latest(folder / CHECKPOINTS)[0] is not None

    try:
        with rundir.staged(out, work, keep=resumable):
            trainer, scores, cost = _train_in(recipe, work, echo, ready, resume_from)
            barrier()  # every process is done before the run is renamed into place
    except BaseException as exc:
        found, _ = checkpoints.latest(work / CHECKPOINTS)
        if found is not None and not isinstance(exc, (Interrupted, UserError)):
            echo(f"the run stopped ({type(exc).__name__}); its checkpoint at step "
                 f"{checkpoints.step_of(found)} is kept: continue with 'adapters-sft resume {out}'")
        raise
    _unscored(trainer, out)
    return RunResult(out, scores, trainer, recipe.task, cost)


def _unscored(trainer: Any, out: Path) -> None:
    """A run that trained but could not be scored after training is committed without that
    score, then reported as the error (exit 2) with how to score it once fixed."""
    if trainer.late_failure is not None:
        raise UserError(f"{trainer.late_failure}; the trained run is saved in {out} without its held-out "
                        f"score after training: fix that, then 'adapters-sft eval {out}'")


@contextmanager
def _env(**values: str) -> Iterator[None]:
    """Environment variables the Trainer's integrations read, set for a block unless the user
    set them: TensorBoard's event files go in the run, not under checkpoints/ (removed at the end)."""
    import os

    new = {k: v for k, v in values.items() if k not in os.environ}
    os.environ.update(new)
    try:
        yield
    finally:
        for k in new:
            os.environ.pop(k, None)


def general_probe(recipe: Recipe) -> bool:
    """Whether a run measures what training cost it on general prompts (scores/general.py):
    generative runs that are scored, unless eval.general is false."""
    from .registry import get_task

    return (get_task(recipe.task).generative and recipe.eval.metric != "none"
            and recipe.eval.general is not False)


def _general_reference(recipe: Recipe, trainer: Any, work: Path) -> Any:
    """The starting model's reference, kept in the run: a resumed run reads it back there."""
    from . import rundir
    from .processes import is_main
    from .scores import general

    prompts = general.load_prompts(recipe.eval.general, recipe.where("eval.general") + "eval.general: ")
    ref = general.reference_for(recipe, trainer.model, trainer.processing_class, prompts,
                                recipe.eval.batch_size, work / rundir.GENERAL)
    if is_main():
        general.save(ref, work / rundir.GENERAL)
    return ref


def _train_in(recipe: Recipe, work: Path, echo: Callable[[str], Any],
              ready: Ready,
              resume_from: Path | None) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    from . import checkpoints, checkpoint_trainer, rundir, sharding
    from .registry import get_task

    from .processes import is_main

    out = Path(recipe.output_dir)
    main = is_main()
    metrics = rundir.MetricsWriter(work / rundir.METRICS, recipe.name)
    logger = metrics.as_callback()
    stop = checkpoint_trainer.StopRequest()
    schedule = checkpoint_trainer.schedule_callback(recipe.checkpoint, stop)
    with _env(TENSORBOARD_LOGGING_DIR=str(work / rundir.TENSORBOARD)):  # read as the Trainer starts
        trainer, strategy, splits = build_trainer(recipe, work, [logger, schedule] if main else [schedule],
                                                  ready)
    trainer.stop_request = stop
    eval_rows = ready.prepared.eval_rows or []  # held-out rows as training rows went through the template
    tokenizer = trainer.processing_class
    # the before-training score of an interrupted run was saved when it was taken
    scores: dict[str, Any] = rundir.read_json(work / rundir.EVAL) if resume_from and \
        (work / rundir.EVAL).is_file() else {}

    task = get_task(recipe.task)

    def score(when: str) -> None:
        rows = eval_rows[: recipe.eval.limit]  # limit None keeps every row
        scores[when], line = task.score(trainer, rows, recipe, when)
        echo(line)

    probe = _general_reference(recipe, trainer, work) if general_probe(recipe) else None
    if recipe.eval.metric != "none" and recipe.eval.before_training and "before" not in scores:
        score("before")
        if main:
            rundir.write_json(work / rundir.EVAL, scores)
    with checkpoint_trainer.stop_on_signals(stop):
        result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    state = trainer.state
    if stop.signum is not None and state.global_step < state.max_steps:
        found, _ = checkpoints.latest(work / CHECKPOINTS)
        if found is None:
            raise Interrupted(f"stopped by {stop.name} at step {state.global_step}; no checkpoint "
                              "was written, so nothing was kept", stop.signum)
        raise Interrupted(f"stopped by {stop.name} at step {state.global_step}; checkpoint of step "
                          f"{checkpoints.step_of(found)} saved in {found}; continue with "
                          f"'adapters-sft resume {out}'", stop.signum)
    if stop.signum is not None:
        echo(f"{stop.name} arrived after the last training step; finishing the run")
    runtime = result.metrics.get("train_runtime")
    cost = trainer.cost(runtime or 0.0)
    trainer.late_failure = None
    if recipe.eval.metric != "none":
        try:
            score("after")
        except UserError as exc:  # a grpo reward failing on the trained model: keep the run, unscored
            trainer.late_failure = exc
    if probe is not None:
        from .scores import general

        scores["general"] = general.compare(trainer.model, tokenizer, probe, recipe.eval.batch_size)
    whole = sharding.full_state_dict(trainer)  # every process takes part in gathering
    if not main:
        return trainer, scores, cost
    metrics.write({"step": state.global_step, "train_runtime": runtime, "train_loss": trainer.run_train_loss(),
                   **cost, "final": True})
    metrics.draw()
    if recipe.eval.metric != "none":
        rundir.write_json(work / rundir.EVAL, scores)
    task.after_training(work, scores, ready.prepared)
    if whole is None:
        strategy.save(trainer.model, work / strategy.artifact)
    else:  # the model's own parameters are this process's shards
        strategy.save(trainer.model, work / strategy.artifact, state_dict=whole)
    tokenizer.save_pretrained(work / rundir.TOKENIZER)
    rundir.write_recipe(work / rundir.RECIPE, saved_recipe(recipe), out / rundir.RECIPE)
    if recipe.training.get("save_strategy", "no") == "no":  # crash insurance, or made for the best
        shutil.rmtree(work / CHECKPOINTS, ignore_errors=True)  # model: the run is complete now
    trainer.remove_callback(logger)  # the staging folder is renamed; later evaluate() calls only print
    return trainer, scores, cost


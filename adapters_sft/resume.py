"""Continue an interrupted run from its newest complete checkpoint.

`adapters-sft resume runs/NAME` reads everything from the staging folder `.NAME.partial`
(the resolved recipe written when training started, its checkpoints) and refuses, naming
what differs, when anything that decides the arithmetic changed since the run started: the
recipe (command-line overrides given to resume), the data (a hash of every normalised row),
the strategy, the number of processes, the device kind (CPU or CUDA: `dtype: auto` differs), or
the library versions. `--force` resumes anyway and
says what it overrode. The resumed run logs the same per-step losses as an uninterrupted one
(tests/test_checkpoints.py shows it, with dropout, shuffled data and gradient accumulation).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .errors import UserError

if TYPE_CHECKING:
    from .data import Splits
    from .recipe import Recipe
    from .trainer import RunResult

from .fingerprint import differences, fingerprint


def _fingerprint_then(path: Path, force: bool) -> dict[str, Any]:
    """The fingerprint the run started with; a damaged one (truncated, edited into another
    shape) is refused in one line, or, with --force, read as nothing known."""
    from . import rundir

    try:
        then = rundir.read_json(path)
    except (OSError, ValueError) as exc:
        then, why = None, f"unreadable ({type(exc).__name__})"
    else:
        why = None if isinstance(then, dict) else f"a JSON {type(then).__name__}, not an object"
    if why is None:
        return then
    if not force:
        raise UserError(f"{path}: {why}, so what the run started with cannot be checked; "
                        "add --force to resume anyway")
    return {}


def check_processes(out: Path, processes: int, force: bool) -> None:
    """Before launching `processes` to resume the run at `out`: refuse a count other than the
    one its checkpoint was made with (what every process would refuse, said once)."""
    from . import rundir

    try:
        then = rundir.read_json(rundir.partial_dir(out) / rundir.FINGERPRINT)
    except (OSError, ValueError):
        return  # no fingerprint, or an unreadable one: the resume itself says so
    had = then.get("world_size") if isinstance(then, dict) else None
    if isinstance(had, int) and had != processes and not force:
        raise UserError(f"{out}: the number of processes changed since the checkpoint ({had} -> "
                        f"{processes}), which changes the batches; resume with --nproc {had}, "
                        "or add --force to resume anyway (the result then matches no single run)")


def resume(out: Path, overrides: list[str] | None = None, force: bool = False,
           echo: Callable[[str], Any] = print) -> RunResult:
    """Continue the interrupted run that will live at `out`."""
    from . import rundir
    from .processes import is_main, main_only

    if not is_main():  # the main process holds the folder for all of them
        return _resume_exclusive(out, overrides, force, main_only(echo))
    with rundir.exclusive(out):
        return _resume_exclusive(out, overrides, force, echo)


def _resume_exclusive(out: Path, overrides: list[str] | None, force: bool,
                      echo: Callable[[str], Any]) -> RunResult:
    from . import checkpoints, rundir
    from .recipe import load_recipe
    from .preflight import preflight
    from .trainer import run_in

    work = rundir.partial_dir(out)
    if not work.is_dir():
        if (out / rundir.RECIPE).is_file():
            raise UserError(f"{out}: this run finished; there is nothing to resume")
        raise UserError(f"{out}: no interrupted run here (no staging folder {work}); "
                        "start one with 'adapters-sft train RECIPE'")
    found, skipped = checkpoints.latest(work / rundir.CHECKPOINTS, before_end=True)
    for line in skipped:
        echo(f"warning: skipping {line}")
    if found is None or not (work / rundir.FINGERPRINT).is_file():
        raise UserError(f"{work}: holds no complete checkpoint, so there is nothing to resume; "
                        f"start over with 'adapters-sft train {work / rundir.RECIPE} "
                        f"output_dir={out} overwrite=true'")
    recipe = load_recipe(str(work / rundir.RECIPE), overrides)
    from .recipe import parse_override

    moved = any(parse_override(o)[0] == "output_dir" for o in overrides or [])
    if moved and Path(recipe.output_dir).resolve() != out.resolve():
        raise UserError(f"output_dir: resume continues the run in {out}; it cannot move it to "
                        f"{recipe.output_dir}")
    # the run is where it was named, whatever folder resume runs in (the saved output_dir may
    # be relative to the folder training started from)
    recipe.output_dir = str(out)
    then = _fingerprint_then(work / rundir.FINGERPRINT, force)
    recipe.name = str(then.get("name", recipe.name))  # the recipe file here is recipe.yaml
    step = checkpoints.step_of(found)
    ready = preflight(recipe, echo)
    now = fingerprint(recipe, ready.splits)
    changed = differences(then, now)
    if changed and not force:
        raise UserError(f"{found}: {changed[0]}; resume with what the run started with, or add "
                        "--force to resume anyway (the result then matches no single run)")
    for line in changed:
        echo(f"warning: resuming although {line} (--force)")
    from .processes import barrier, is_main

    if is_main():
        if changed:  # what this session runs with is what the next resume compares against
            from .trainer import saved_recipe

            rundir.write_recipe(work / rundir.RECIPE, saved_recipe(recipe), out / rundir.RECIPE)
            rundir.write_json(work / rundir.FINGERPRINT, now)
        checkpoints.discard_after(work / rundir.CHECKPOINTS, step)
        rundir.truncate_metrics(work / rundir.METRICS, step)
    barrier()  # the other processes start from the folder as the main one left it
    echo(f"resuming '{recipe.name}' from step {step} ({found}) -> {out}")
    return run_in(recipe, work, echo, ready, resume_from=found)

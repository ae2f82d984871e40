"""What the UI's page asks for, answered from the same code the CLI uses: recipes and strategy
options from the recipe loader and the registry, validation by `load_recipe` + `training_args`
(what `validate` runs; the error is the CLI's own line), runs read from their directories
(rundir.py's names), and every operation started as the CLI command it shows (jobs.py).

Paths from the page are resolved inside the folder the UI was started on and refused outside it.
"""
from __future__ import annotations

import dataclasses
import json
import re
import shlex
from pathlib import Path
from typing import Any

from ..errors import UserError
from .. import rundir

UI_DIR = ".adapters-sft-ui"


def inside(root: Path, relative: str) -> Path:
    """`relative` resolved inside `root`; anything that leaves it is refused."""
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise UserError(f"'{relative}': outside the folder the UI serves ({root})")
    return path


# Keys whose value names a file or folder: a request may only name ones inside the served folder.
PATH_KEYS = ("output_dir", "data.train", "data.eval", "init_from", "model")
NOT_A_PATH = re.compile(r"^(builtin|hub):")  # bundled data, a hub data set


def confined(root: Path, overrides: list[str]) -> None:
    """Refuse an override that names a path outside `root` (`output_dir=../elsewhere`, an
    absolute path); a hub id or alias resolves inside it, so it passes."""
    from ..recipe import parse_override

    for override in overrides:
        key, value = parse_override(override)  # as the recipe loader will read it
        if key in PATH_KEYS and isinstance(value, str) and value and not NOT_A_PATH.match(value):
            try:
                inside(root, value)
            except UserError:
                raise UserError(f"{key}: '{value}' is outside the folder the UI serves ({root}); "
                                "name a path inside it") from None


def recipes(root: Path) -> list[dict[str, Any]]:
    """Shipped recipes by name, then the YAML recipes in the served folder by path."""
    from ..recipe import recipe_names

    local = sorted(p.name for p in root.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    return [{"name": n, "shipped": True} for n in recipe_names()] + \
        [{"name": n, "shipped": False} for n in local]


def recipe(root: Path, name: str) -> dict[str, Any]:
    """A recipe resolved, its header comment and every option of its strategy, with help."""
    from ..recipe import find_recipe, load_recipe
    from ..registry import get_strategy

    ref = recipe_ref(root, name)
    loaded = load_recipe(ref)
    comments = [line[1:].strip() for line in find_recipe(ref)[1].read_text().splitlines()[:4]
                if line.startswith("#")]
    options = [{"key": f"strategy.{f.name}", "default": _plain(getattr(loaded.strategy, f.name)),
                "help": f.metadata.get("help", "")}
               for f in dataclasses.fields(get_strategy(loaded.strategy.name).Options) if f.init]
    return {"name": name, "about": comments, "resolved": _plain(loaded.to_dict()), "options": options}


def recipe_ref(root: Path, name: str) -> str:
    """A shipped recipe's name as it is; any other is a file inside the served folder."""
    from ..recipe import recipe_names

    return name if name in recipe_names() else str(inside(root, name))


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


# the key a CLI error line names: "WHERE: KEY: ..." or "WHERE: unknown key 'KEY' ..."
KEY = re.compile(r"^(?:command line: |[^:]+:\d+: |[^:]+: )?(?:unknown key '([\w.]+)'|([A-Za-z_][\w.]*):)")


def validate(root: Path, name: str, overrides: list[str]) -> dict[str, Any]:
    """The checks of `adapters-sft validate --no-data`, in this process: the same recipe
    loader and Trainer config. An error is the CLI's line, with the key it names."""
    from ..recipe import load_recipe
    from ..training.args import training_args

    ref = recipe_ref(root, name)
    try:
        confined(root, overrides)
        loaded = load_recipe(ref, overrides)
        training_args(loaded, has_eval=bool(loaded.data.eval or loaded.data.val_size))
    except UserError as exc:
        message = str(exc)
        match = KEY.match(message)
        key = match and (match.group(1) or match.group(2))
        return {"ok": False, "error": message, "key": key or None}
    return {"ok": True, "command": shlex.join(["adapters-sft", "train", name, *overrides]),
            "output_dir": loaded.output_dir}


def runs(root: Path) -> list[dict[str, Any]]:
    """Every run below the served folder (three levels deep: runs/smollm2-135m/lora):
    finished ones, and unfinished ones (their staging folder: training now, or stopped)."""
    found = []
    markers = [m for depth in ("*", "*/*", "*/*/*") for m in root.glob(f"{depth}/{rundir.RECIPE}")]
    for marker in sorted(markers):
        folder = marker.parent
        if UI_DIR in folder.parts:
            continue
        partial = folder.name.startswith(".") and folder.name.endswith(".partial")
        if folder.name.startswith(".") and not partial:
            continue
        found.append(summary(root, folder, partial))
    return found


def summary(root: Path, folder: Path, partial: bool = False) -> dict[str, Any]:
    import yaml

    saved = yaml.safe_load((folder / rundir.RECIPE).read_text()) or {}
    strategy = saved.get("strategy") or {}
    records = metrics(folder)
    losses = [r["loss"] for r in records if "loss" in r]
    final = next((r for r in reversed(records) if r.get("final")), {})
    scores = _read(folder / rundir.EVAL) or {}
    shown = folder.parent / folder.name[1:-len(".partial")] if partial else folder
    state = "finished"
    if partial:  # training now, or stopped: resumable where a complete checkpoint is kept
        from ..checkpoints import latest

        state = "unfinished, resumable" if latest(folder / rundir.CHECKPOINTS)[0] else "unfinished"
    return {"path": str(shown.relative_to(root)), "state": state,
            "model": saved.get("model"), "strategy": strategy.get("name"), "task": saved.get("task", "sft"),
            "steps": max((r.get("step", 0) for r in records), default=0),
            "final_loss": final.get("train_loss", losses[-1] if losses else None),
            # a finished run without "after" was not scored after training (a failing reward)
            "scores": scores.get("after") or (scores.get("before") if state != "finished" else None),
            "size": sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())}


def metrics(folder: Path) -> list[dict[str, Any]]:
    path = folder / rundir.METRICS
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:  # a line being written right now
            continue
    return out


def run(root: Path, relative: str) -> dict[str, Any]:
    """One run (finished, or still training / interrupted: its staging folder) in detail."""
    folder = inside(root, relative)
    partial = rundir.partial_dir(folder)
    live = not (folder / rundir.RECIPE).is_file() and partial.is_dir()
    where = partial if live else folder
    if not (where / rundir.RECIPE).is_file():
        raise UserError(f"'{relative}': not a run (no {rundir.RECIPE}) yet")
    files = {name: (where / name).is_file() for name in (rundir.LOSS_PLOT, rundir.CONFUSION)}
    return {"path": relative, "state": "training or interrupted" if live else "finished",
            "metrics": metrics(where), "eval": _read(where / rundir.EVAL),
            "recipe": (where / rundir.RECIPE).read_text(), "files": files}


def _read(path: Path) -> Any:
    """rundir.read_json, or None where the file is absent or being written."""
    try:
        return rundir.read_json(path)
    except (OSError, ValueError):
        return None


def run_file(root: Path, relative: str, name: str) -> Path:
    """A picture a run drew (loss plot, confusion matrix); nothing else is served."""
    if name not in (rundir.LOSS_PLOT, rundir.CONFUSION):
        raise UserError(f"'{name}': only {rundir.LOSS_PLOT} and {rundir.CONFUSION} are served")
    folder = inside(root, relative)
    path = folder / name if (folder / name).is_file() else rundir.partial_dir(folder) / name
    if not path.is_file():
        raise UserError(f"'{relative}/{name}': not drawn yet")
    return path


def command(root: Path, verb: str, body: dict[str, Any]) -> list[str]:
    """The CLI arguments of an operation the page asks for; outputs go below the served folder."""
    from .request import text, texts

    if verb in ("train", "plan", "check"):
        name, overrides = text(body, "recipe"), texts(body, "overrides")
        recipe_ref(root, name)  # refuses a path outside the served folder
        confined(root, overrides)
        return [verb, name, *overrides]
    target = text(body, "run")
    inside(root, target)
    if verb in ("resume", "eval"):
        return [verb, target]
    stem = Path(target).name
    if verb == "merge":
        return ["merge", target, "--out", f"exports/{stem}-merged"]
    if verb == "export":
        fmt = text(body, "format", "gguf")
        if fmt not in ("peft", "safetensors", "gguf"):
            raise UserError(f"--format: must be peft, safetensors or gguf, got '{fmt}'")
        return ["export", target, "--format", fmt, "--out", f"exports/{stem}-{fmt}"]
    raise UserError(f"'{verb}': not an operation of the UI")

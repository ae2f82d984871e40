"""The run directory: everything later commands need, written atomically. This module owns
its layout (the names below are its constants: RECIPE, TOKENIZER, ...), its staged writes
(`staged`, `commit`) and what is read back without a model (`read_heldout`); run_reader.py loads a
finished run's model from it.

    runs/<name>/
      recipe.yaml      the fully resolved recipe, with the library versions used
      adapter/ | weights/   what the strategy trained (see each strategy's `artifact`)
      tokenizer/       tokenizer files, including the exact chat template used in training
      checkpoints/     while training: resumable checkpoints (checkpoints.py); removed once
                       the run is complete unless training.save_strategy asked for them
      metrics.jsonl    one JSON line per logging step
      loss.png         its curves (loss_plot.py), drawn at the end and at each checkpoint
      tensorboard/     TensorBoard's event files, when training.report_to names it
      fingerprint.json what `resume` compared: data hashes, versions, process count, recipe
      heldout.json     the held-out rows as trained against (normalised), so eval and merge
                       work without the original data files (a run moved or copied elsewhere)
      eval.json        held-out scores (when the recipe asks for them), and the general probe's
      general.safetensors  the general probe's reference: the starting model's answers to the
                       general prompts and its likeliest tokens on them (scores/general.py)
      replay.jsonl     data.replay: the base model's own answers it mixed in (data/replay.py)
      confusion.png    classification: the held-out confusion matrix after training
      labels.json      classification: the class names, in class-id order
      scored_as.json   reward: whether it read its pairs through the chat template
      eval/            what `adapters-sft eval` wrote (eval.json, confusion.png)

A run is built in a hidden sibling folder `.<name>.partial` and renamed into place only when
complete, so an interrupted or failed run never leaves a half-written `runs/<name>`. The
staging folder starts with recipe.yaml and fingerprint.json (what `resume` compares); a run
that stops with a complete checkpoint keeps it, for `adapters-sft resume runs/<name>`; one
that stops without a checkpoint leaves nothing.
"""
from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from .errors import UserError
from .recipe import YAML12_FLOAT

# The layout: every module names a run's files through these (one owner for the names).
RECIPE = "recipe.yaml"
TOKENIZER = "tokenizer"
CHECKPOINTS = "checkpoints"
METRICS = "metrics.jsonl"
LOSS_PLOT = "loss.png"
TENSORBOARD = "tensorboard"  # event files, with training.report_to=tensorboard
FINGERPRINT = "fingerprint.json"
HELDOUT = "heldout.json"
EVAL = "eval.json"
GENERAL = "general.safetensors"  # the general probe's reference (scores/general.py)
REPLAY = "replay.jsonl"  # data.replay: the base model's answers it mixed in (data/replay.py)
LABELS = "labels.json"
SCORED_AS = "scored_as.json"
CONFUSION = "confusion.png"
# `adapters-sft eval`'s reports, a folder per data set: the one thing ever added to a finished
# run (its own held-out split is OWN_SPLIT, --data FILE is the file's name)
EVALS = "evals"
OWN_SPLIT = "heldout"

_LIBS = ("adapters-sft", "torch", "transformers", "peft", "trl", "accelerate", "datasets", "bitsandbytes")


@contextmanager
def exclusive(out: Path, key: str = "output_dir") -> Iterator[None]:
    """Hold `out` and its staging folder for this process while it writes them: a second
    writer is refused at once, naming the first one's pid. The lock is an flock on a hidden
    sibling file; the kernel drops it when its process dies, so a killed run leaves no stale
    lock. Taking it also proves the parent folder can be created and written, before any
    model loads, and refuses a path inside a run (nothing is created there). Parent folders it
    had to create are removed again if they are still empty when it is released."""
    import fcntl

    inside = enclosing_run(out.resolve().parent)
    if inside is not None:  # checked before anything is created there
        raise UserError(f"{key}: '{out}' is inside the run '{inside}', and writing there could "
                        f"destroy it; choose a path outside every run")
    lock = out.parent / f".{out.name}.lock"
    # the folders this call creates for the lock, deepest first: removed again at the end if
    # nothing was put in them (a refused train or export leaves no empty new parent behind)
    created = []
    for folder in (out.parent, *out.parent.parents):
        if folder.exists():
            break
        created.append(folder)
    for _ in range(5):  # the lock file may be removed by its last holder between open and flock
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise UserError(f"{key}: cannot write to '{out.parent}' ({exc.strerror}); choose a "
                            f"writable folder for {key}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise UserError(f"{key}: '{out}' is being written by another adapters-sft process "
                            f"(pid {holder}); wait for it to finish, or choose another {key}") from None
        try:
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    else:
        raise UserError(f"{key}: could not lock '{lock}'; try again")
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        lock.unlink(missing_ok=True)  # while still held: nothing is left behind
        os.close(fd)
        for folder in created:
            try:
                folder.rmdir()  # only an empty one
            except OSError:
                break


def enclosing_run(path: Path) -> Path | None:
    """The run directory that `path` is (or is inside), if any."""
    for folder in (path, *path.parents):
        if (folder / RECIPE).is_file() and any((folder / a).is_dir() for a in ("adapter", "weights")):
            return folder
    return None


def check_target(out: Path, overwrite: bool) -> None:
    """Refuse to train into an existing, non-empty folder unless it is an old run and
    overwrite=true: overwrite replaces runs, never a folder that holds anything else."""
    if out.exists() and not out.is_dir():
        raise UserError(f"output_dir: '{out}' is a file; choose another output_dir=...")
    if Path.cwd().resolve().is_relative_to(out.resolve()):
        raise UserError(f"output_dir: '{out}' is the current folder or one above it; "
                        "choose a new folder such as runs/NAME")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not overwrite:
        raise UserError(f"output_dir: '{out}' already holds a run; choose another "
                        "output_dir=... or add overwrite=true to replace it")
    if not (out / RECIPE).is_file():
        raise UserError(f"output_dir: '{out}' is not empty and is not a run (no {RECIPE}), "
                        "so overwrite=true will not delete it; choose another output_dir=...")


def partial_dir(out: Path) -> Path:
    """The staging folder of the run that will live at `out`."""
    return out.parent / f".{out.name}.partial"


def staging_dir(out: Path) -> Path:
    """A fresh staging folder; an old one (a run that stopped) is discarded."""
    tmp = partial_dir(out)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


@contextmanager
def staged(out: Path, work: Path | None = None,
           keep: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """A staging folder for `out` (fresh, or `work` when it already holds a run's start):
    committed into place when the block ends, removed when it raises, so a result (a run, a
    merged model, an export) appears whole or not at all; unless `keep(folder)` says a failed
    one is worth keeping (a run with a complete checkpoint, for resume)."""
    tmp = work if work is not None else staging_dir(out)
    try:
        yield tmp
        commit(tmp, out)
    except BaseException:
        if keep is None or not keep(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        raise


def commit(tmp: Path, out: Path) -> None:
    """Move the finished run into place; an old run (overwrite=true) goes only after."""
    from .file_modes import usual_modes

    usual_modes(tmp)
    old = out.parent / f".{out.name}.old"
    if out.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def versions() -> dict[str, str]:
    out = {}
    for lib in _LIBS:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            pass
    return out


class _Dumper(yaml.SafeDumper):
    """Quotes strings that our recipe loader (YAML 1.2 floats) would read back as numbers,
    such as a file named 1e5: a resolved recipe must load back exactly."""


_Dumper.add_implicit_resolver("tag:yaml.org,2002:float", YAML12_FLOAT, list("-+0123456789."))


def write_recipe(path: Path, recipe_dict: dict[str, Any], final_path: Path) -> None:
    """Write the resolved recipe to `path` (in the staging folder); its header names
    `final_path`, where it will live once the run is complete."""
    header = ("# Resolved recipe of this run (defaults < YAML < command line), with versions.\n"
              f"# Re-run: adapters-sft train {final_path} output_dir=NEW_DIR\n")
    body = yaml.dump({**recipe_dict, "versions": versions()}, Dumper=_Dumper, sort_keys=False)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(header + body)
    os.replace(tmp, path)


def write_heldout(work: Path, splits: Any) -> None:
    """Keep the held-out rows with the run (data.eval, or what data.val_size carved off)."""
    if splits.eval is not None:
        write_json(work / HELDOUT, {"kind": splits.kind, "rows": splits.eval.rows,
                                           "where": splits.eval.where})


def write_replay(work: Path, splits: Any) -> None:
    """data.replay's rows, kept with the run for resume (data/replay.py reads them back)."""
    if getattr(splits, "replay", None):
        from .data.replay import SOURCE, write

        write(work / REPLAY, splits.replay, next(f["hash"] for f in splits.mix if f["source"] == SOURCE))


def read_heldout(run: Path) -> tuple[Any, str] | None:
    """(Split, kind) of the held-out rows saved with a run, or None (older runs, no eval)."""
    from .data import Split

    path = run / HELDOUT
    if not path.is_file():
        return None
    saved = read_json(path)
    return Split(saved["rows"], saved["where"]), saved["kind"]


def portable_paths(recipe_dict: dict[str, Any]) -> dict[str, Any]:
    """Local data and model paths made absolute, so the saved recipe means the same files from
    any folder (builtin:, hub: references, aliases and hub ids are left as they are)."""
    data = dict(recipe_dict.get("data") or {})
    for key in ("train", "eval"):
        data[key] = _portable_ref(data.get(key))
    if isinstance(data.get("train"), list):  # mixed sources (data/mix.py)
        data["train"] = [_portable_ref(s) if isinstance(s, str) else
                         {**s, "path": _portable_ref(s.get("path"))} if isinstance(s, dict) else s
                         for s in data["train"]]
    if isinstance(data.get("replay_prompts"), str):
        data["replay_prompts"] = _portable_ref(data["replay_prompts"])
    model = recipe_dict.get("model")
    if isinstance(model, str) and model and Path(model).is_dir():  # a local folder, not an alias or hub id
        model = str(Path(model).resolve())
    start = recipe_dict.get("init_from")
    if isinstance(start, str) and start and Path(start).is_dir():
        start = str(Path(start).resolve())
    rewards = [_portable_reward(r) for r in recipe_dict.get("rewards") or []]
    scoring = dict(recipe_dict.get("eval") or {})
    if isinstance(scoring.get("general"), str) and Path(scoring["general"]).is_file():  # the prompts file
        scoring["general"] = str(Path(scoring["general"]).resolve())
    return {**recipe_dict, "data": data, "model": model, "init_from": start, "rewards": rewards,
            "eval": scoring}


def _portable_ref(ref: Any) -> Any:
    """A local data reference made absolute; builtin:, hub: and the rest as they are."""
    if isinstance(ref, str) and ref and not ref.startswith(("builtin:", "hub:")) and Path(ref).exists():
        return str(Path(ref).resolve())
    return ref


def _portable_reward(entry: Any) -> Any:
    """A reward named by its file (FILE.py:FUNCTION, as a string or an entry's `name`) with the
    file's path made absolute, and a reward run's `path` too."""
    if isinstance(entry, str):
        return _portable_reward({"name": entry})["name"]
    if not isinstance(entry, dict):
        return entry
    name, out = entry.get("name"), dict(entry)
    module, _, fn = name.rpartition(":") if isinstance(name, str) else ("", "", "")
    if module and (module.endswith(".py") or "/" in module) and Path(module).is_file():
        out["name"] = f"{Path(module).resolve()}:{fn}"
    if name == "run" and isinstance(entry.get("path"), str) and Path(entry["path"]).is_dir():
        out["path"] = str(Path(entry["path"]).resolve())
    return out


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def truncate_metrics(path: Path, step: int) -> None:
    """Keep the metrics.jsonl lines up to `step`: a resumed run logs the later steps again."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # the last line, cut off by a kill
        if record.get("step", 0) <= step and not record.get("final") and "train_runtime" not in record:
            keep.append(line)  # not the end-of-session summaries: the resumed session has its own
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in keep))
    os.replace(tmp, path)


class MetricsWriter:
    """Appends one JSON object per logging step to metrics.jsonl (a Trainer callback), and
    draws loss.png beside it at each checkpoint."""

    def __init__(self, path: Path, title: str = "") -> None:
        self.path, self.title = path, title

    def draw(self) -> None:
        """loss.png from what is logged so far; a plot that fails never stops a run."""
        from .loss_plot import draw_loss

        try:
            if self.path.is_file():
                draw_loss(self.path, self.path.with_name(LOSS_PLOT), self.title)
        except Exception:  # noqa: BLE001 - the curves are a view; the run is what matters
            pass

    def as_callback(self) -> Any:
        from transformers import TrainerCallback

        writer = self

        class _Callback(TrainerCallback):
            def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
                if logs:
                    writer.write({"step": state.global_step, "epoch": state.epoch, **logs})

            def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                writer.draw()

        return _Callback()

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

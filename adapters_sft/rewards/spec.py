"""The recipe's `rewards:` list, read and checked before any model loads.

  rewards:
    - {name: exact_match, column: answer, weight: 1.0}      a registered reward and its options
    - {name: regex, pattern: '\\d{4}-\\d{2}-\\d{2}', weight: 0.5}
    - {name: ./my_rewards.py:score, weight: 0.5}            a user's function: FILE.py:FUNCTION
    - {name: my_package.rewards:score}                      or MODULE:FUNCTION (importable here)

Every problem is one UserError naming `rewards[i]` in the recipe file: an unknown reward (with
the nearest name), an unknown option, a file or function that does not exist, a column the
data does not have (naming the data file). A user function's named parameters other than TRL's
own are the columns it reads; with **kwargs it receives every column.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any, Callable

from ..errors import UserError
from .base import Reward, Scorer, plugin_fn

# the keyword arguments TRL passes besides the data columns
TRL_ARGUMENTS = ("prompts", "completions", "completion_ids", "trainer_state", "log_extra", "log_metric",
                 "environments")
ENTRY_KEYS = ("name", "weight")


@dataclasses.dataclass
class Entry:
    """One reward of the recipe, ready to score."""
    scorer: Scorer
    columns: list[str] | None  # the data columns it reads; None: every column (**kwargs)
    origin: str                # "built-in", the plugin's package, or the user's file


def entries(recipe: Any) -> list[Entry]:
    """The recipe's rewards; a UserError for the first bad entry. Built once per recipe and
    kept on it (pre-flight, training and scoring share them: a reward model loads once)."""
    import copy

    kept = recipe.__dict__.get("_reward_entries")  # not a field: to_dict() leaves it out
    if kept is None or kept[0] != recipe.rewards:
        kept = (copy.deepcopy(recipe.rewards), _build(recipe))
        recipe.__dict__["_reward_entries"] = kept
    return kept[1]


def _build(recipe: Any) -> list[Entry]:
    where = recipe.where("rewards")
    raw = recipe.rewards
    if not raw:
        raise UserError(f"{where}rewards: task grpo learns from rewards, and the recipe names none; add e.g. "
                        "rewards: [{name: exact_match, column: answer}] (adapters-sft ls lists them)")
    out: list[Entry] = []
    for i, item in enumerate(raw):
        key = f"rewards[{i}]"
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise UserError(f"{where}{key}: expected a mapping with a name, e.g. {{name: exact_match, "
                            f"column: answer}}; got {item!r}")
        weight = item.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise UserError(f"{where}{key}.weight: must be a number, got {weight!r}")
        name = item["name"]
        options = {k: v for k, v in item.items() if k not in ENTRY_KEYS}
        if ":" in name:
            if options:
                raise UserError(f"{where}{key}: a function of yours takes no options here (got "
                                f"{', '.join(sorted(options))}); read them from the data, or set them in its file")
            fn, columns, origin = user_function(name, f"{where}{key}.name")
            label, exact = name.rsplit(":", 1)[1], False
        else:
            reward = build_reward(name, options, key, recipe.where)
            reward.check(f"{where}{key}")
            fn, columns, origin = plugin_fn(reward), reward.columns(), _origin(type(reward))
            label, exact = name, reward.exact
        taken = {e.scorer.label for e in out}
        unique = label if label not in taken else next(f"{label}_{n}" for n in range(2, 99) if f"{label}_{n}" not in taken)
        out.append(Entry(Scorer(unique, fn, float(weight), exact), columns, origin))
    return out


def build_reward(name: str, options: dict[str, Any], key: str, where: Callable[[str], str]) -> Reward:
    from ..fields import build
    from ..registry import get_reward

    cls = get_reward(name, f"{where('rewards')}{key}.name")
    try:
        opts = build(cls.Options, options, key, lambda k: where("rewards"))
    except UserError as exc:  # an Options __post_init__ names its own key only
        msg = str(exc)
        at = where("rewards")
        if key not in msg:
            msg = f"{at}{key}." + (msg[len(at):] if msg.startswith(at) else msg)
        raise UserError(msg) from None
    return cls(opts)


def user_function(spec: str, at: str) -> tuple[Callable[..., Any], list[str] | None, str]:
    """(function, the columns it reads or None for all, where it came from) for FILE.py:NAME or
    MODULE:NAME; relative files start from the current directory, as data paths do."""
    module_ref, _, fname = spec.rpartition(":")
    if not module_ref or not fname:
        raise UserError(f"{at}: '{spec}' names no function; write FILE.py:FUNCTION or MODULE:FUNCTION")
    if module_ref.endswith(".py") or "/" in module_ref:
        path = Path(module_ref).expanduser()
        if not path.is_file():
            raise UserError(f"{at}: file '{module_ref}' not found (relative paths start from the current "
                            "directory); check the path")
        module = _load_file(path.resolve(), at)
    else:
        try:
            module = importlib.import_module(module_ref)
        except ImportError as exc:
            raise UserError(f"{at}: cannot import module '{module_ref}' ({exc}); install it, or name a "
                            "file: FILE.py:FUNCTION") from None
    fn = getattr(module, fname, None)
    if not callable(fn):
        found = sorted(n for n, v in vars(module).items() if inspect.isfunction(v) and not n.startswith("_"))
        from ..errors import did_you_mean

        raise UserError(f"{at}: '{module_ref}' defines no function '{fname}'{did_you_mean(fname, found)}; "
                        f"its functions: {', '.join(found) or 'none'}")
    return _taking_what_it_names(fn), _columns_of(fn), module_ref


def _taking_what_it_names(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` called with only the keyword arguments it names, unless it takes **kwargs: TRL
    passes every data column and its own extras (completion_ids, trainer_state, ...), which a
    function such as `score(completions, answer)` would refuse."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return fn
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return fn
    names = {n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}

    def call(**kwargs: Any) -> Any:
        return fn(**{k: v for k, v in kwargs.items() if k in names})

    return call


def _load_file(path: Path, at: str) -> Any:
    """The file as a module, imported once per version of it (a fixed file is read again:
    a run resumed in the same process, as the UI's, gets the fix)."""
    stat = path.stat()
    name = f"adapters_sft_user_rewards.{path.stem}_{abs(hash((str(path), stat.st_mtime_ns, stat.st_size)))}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    try:
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    except Exception as exc:  # noqa: BLE001 - the user's file: name it and the error
        raise UserError(f"{at}: importing '{path}' failed ({type(exc).__name__}: {exc}); fix the file") from None
    sys.modules[name] = module
    return module


def _columns_of(fn: Callable[..., Any]) -> list[str] | None:
    """The data columns a TRL-style reward function names as parameters; None with **kwargs."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.name not in TRL_ARGUMENTS
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is inspect.Parameter.empty]


def _origin(cls: type) -> str:
    root = cls.__module__.split(".")[0]
    return "built-in" if root == "adapters_sft" else f"package {root}"


def check_columns(found: list[Entry], columns: list[str], data: str, recipe: Any) -> None:
    """Each reward's columns are in the data (`columns`: those of the first row of `data`)."""
    for i, entry in enumerate(found):
        missing = [c for c in entry.columns or [] if c not in columns]
        if missing:
            raise UserError(f"{recipe.where('rewards')}rewards[{i}]: reward '{entry.scorer.label}' reads column "
                            f"'{missing[0]}', which {data} does not have (its columns: "
                            f"{', '.join(columns) or 'none'}); add it to the data, map it with data.columns, "
                            "or set the reward's column")


def received(entry: Entry, columns: list[str]) -> list[str]:
    """The columns a reward receives, as `check` shows them."""
    return list(columns) if entry.columns is None else entry.columns

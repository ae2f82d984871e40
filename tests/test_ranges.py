"""Every number a user can give is range-checked before anything loads: a sweep over every
recipe option (ours, every registered strategy's, the TRL/Trainer `training:` keys we pass
on) and every verb's numeric command-line option. A new numeric option without a range
fails here, so it cannot skip validation."""
from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path

import pytest

from adapters_sft.errors import UserError
from adapters_sft.fields import Range

NON_FINITE = [float("nan"), float("inf"), float("-inf")]


def _numeric(hint: typing.Any) -> bool:
    return any(a in (int, float) for a in (typing.get_args(hint) or (hint,)))


def _is_int(hint: typing.Any) -> bool:
    return float not in (typing.get_args(hint) or (hint,))


def outside(allowed: Range, integer: bool) -> list[float]:
    """Values just outside `allowed` (at an open end, the end itself), and non-finite ones."""
    step = 1 if integer else 1e-3
    values = list(NON_FINITE)
    if allowed.low is not None:
        values.append(allowed.low if allowed.low_open else allowed.low - step)
    if allowed.high is not None:
        values.append(allowed.high if allowed.high_open else allowed.high + step)
    return values


def inside(allowed: Range) -> list[float]:
    """The closed ends of `allowed`: the boundary values that must be accepted."""
    return [v for v, is_open in ((allowed.low, allowed.low_open), (allowed.high, allowed.high_open))
            if v is not None and not is_open]


def _yaml(value: float, integer: bool) -> str:
    if value != value:
        return ".nan"
    if value in (float("inf"), float("-inf")):
        return "-.inf" if value < 0 else ".inf"
    return str(int(value)) if integer else f"{value:.6f}"


def recipe_options() -> list[tuple[str, str, typing.Any, dict]]:
    """(strategy, dotted key, hint, field metadata) for every numeric option of a recipe."""
    from adapters_sft.training.own_keys import OwnKeys
    from adapters_sft.recipe import _SECTIONS, Recipe
    from adapters_sft.registry import get_strategy, strategy_names

    groups = [("lora", "", Recipe), ("lora", "training.", OwnKeys),
              *[("lora", f"{key}.", cls) for key, cls in _SECTIONS.items()],
              *[(name, "strategy.", get_strategy(name).Options) for name in strategy_names()]]
    out = []
    for strategy, prefix, cls in groups:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.init and _numeric(hints[f.name]):
                out.append((strategy, prefix + f.name, hints[f.name], dict(f.metadata)))
    return out


OPTIONS = recipe_options()


def test_every_numeric_recipe_option_declares_its_range():
    missing = [key for strategy, key, _, meta in OPTIONS if "range" not in meta]
    assert not missing, f"give these options a Range in option(...): {missing}"
    assert len(OPTIONS) >= 20  # the walk found the options (recipe, sections, knobs, strategies)


def _load(tmp_path: Path, strategy: str, *overrides: str):
    from adapters_sft.recipe import load_recipe

    path = tmp_path / f"{strategy}.yaml"
    path.write_text(json.dumps({"model": "m", "strategy": {"name": strategy},
                                "data": {"train": "t.jsonl"}}))
    return load_recipe(str(path), list(overrides))


@pytest.mark.parametrize("strategy,key,hint,meta", OPTIONS, ids=[f"{s}:{k}" for s, k, _, _ in OPTIONS])
def test_recipe_option_out_of_range_is_one_clear_error(strategy, key, hint, meta, tmp_path):
    integer = _is_int(hint)
    for value in outside(meta["range"], integer):
        with pytest.raises(UserError) as err:
            _load(tmp_path, strategy, f"{key}={_yaml(value, integer)}")
        assert f"command line: {key}: " in str(err.value), str(err.value)
    for value in inside(meta["range"]):
        recipe = _load(tmp_path, strategy, f"{key}={_yaml(value, integer)}")
        assert recipe is not None


def _training_keys() -> list[tuple[str, str, typing.Any]]:
    from transformers import TrainingArguments
    from trl import SFTConfig

    from adapters_sft.training.trainer_keys import OWNED, numeric_keys

    return [(task, key, hint) for task, cls in (("sft", SFTConfig), ("classification", TrainingArguments))
            for key, hint in numeric_keys(cls).items() if key not in OWNED]


TRAINING_KEYS = _training_keys()


def test_the_range_table_names_only_real_keys():
    from adapters_sft.training.trainer_keys import RANGES

    known = {key for _, key, _ in TRAINING_KEYS}
    assert set(RANGES) <= known, set(RANGES) - known
    assert len(known) >= 25


@pytest.mark.parametrize("task,key,hint", TRAINING_KEYS, ids=[f"{t}:{k}" for t, k, _ in TRAINING_KEYS])
def test_training_key_out_of_range_is_refused_before_loading(task, key, hint, tmp_path):
    from adapters_sft.training.args import training_args
    from adapters_sft.training.trainer_keys import DEFAULT, RANGES

    integer = _is_int(hint)
    allowed = Range(1) if key == "max_steps" else RANGES.get(key, DEFAULT)
    for value in outside(allowed, integer):
        if key == "max_steps" and value == 0:
            value = -2  # -1 means "train by epochs"; 0 and -2 are out
        recipe = _load(tmp_path, "lora", f"task={task}", f"training.{key}={_yaml(value, integer)}")
        with pytest.raises(UserError) as err:
            training_args(recipe, tmp_path / "ckpt")
        assert f"training.{key}: " in str(err.value), str(err.value)


def _cli_options() -> list[tuple[str, str, typing.Any]]:
    from adapters_sft.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.choices and isinstance(a.choices, dict))
    return [(verb, action.option_strings[0] if action.option_strings else action.dest, action.type)
            for verb, p in sub.choices.items() for action in p._actions]


CLI = _cli_options()


def test_no_cli_option_reads_a_bare_number():
    bare = [f"{verb} {opt}" for verb, opt, kind in CLI if kind in (int, float)]
    assert not bare, f"use cli.args.number(kind, low, ...) for: {bare}"
    assert any(hasattr(kind, "range") for _, _, kind in CLI)


NUMBERED = [(verb, opt, kind) for verb, opt, kind in CLI if hasattr(kind, "range")]


@pytest.mark.parametrize("verb,opt,kind", NUMBERED, ids=[f"{v}{o}" for v, o, _ in NUMBERED])
def test_cli_number_out_of_range_is_one_line_exit_2(verb, opt, kind, capsys, tmp_path, monkeypatch):
    from adapters_sft.cli.main import main

    monkeypatch.chdir(tmp_path)
    integer = kind.__name__ == "int"
    for value in [*outside(kind.range, integer), "ten"]:
        text = value if isinstance(value, str) else ("nan" if value != value else
                                                     str(int(value)) if integer and abs(value) != float("inf")
                                                     else str(value))
        with pytest.raises(SystemExit) as exit_:
            main([verb, opt, text])
        err = capsys.readouterr().err.strip()
        assert exit_.value.code == 2 and len(err.splitlines()) == 1, err
        assert err.startswith(f"adapters-sft: error: adapters-sft {verb}: argument {opt}"), err
    assert list(tmp_path.iterdir()) == []  # nothing written

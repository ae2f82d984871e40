"""Build typed dataclasses from plain dicts, with errors that name the dotted key.

Recipe sections and strategy options are dataclasses whose fields carry a `help` string in
their metadata. `build(cls, values, prefix)` checks unknown keys (with a did-you-mean) and
value types, so `strategy.r: "eight"` fails as `strategy.r: expected int, got 'eight'`.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, TypeVar, Union

from .errors import UserError, did_you_mean

T = TypeVar("T")


def option(default: Any, help: str, **kw: Any) -> Any:
    """A dataclass field with a help string (shown by `adapters-sft show`)."""
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d),
                                 metadata={"help": help}, **kw)
    return dataclasses.field(default=default, metadata={"help": help}, **kw)


def build(cls: type[T], values: dict[str, Any], prefix: str,
          where: typing.Callable[[str], str] = lambda key: "") -> T:
    """`cls(**values)` with unknown keys and wrong types reported as UserError."""
    if not isinstance(values, dict):
        raise UserError(f"{where(prefix)}{prefix}: expected a mapping of keys, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    kwargs = {}
    for key, value in values.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            raise UserError(f"{where(dotted)}unknown key '{dotted}'{did_you_mean(str(key), names)}; "
                            f"valid keys under '{prefix or 'top level'}': {', '.join(names)}")
        kwargs[key] = check_type(value, hints[key], dotted, where)
    try:
        return cls(**kwargs)
    except UserError as exc:  # __post_init__ checks name their key; add the file:line
        msg = str(exc)
        key = msg.split(":", 1)[0]
        raise UserError(f"{where(key)}{msg}") from None


def check_type(value: Any, tp: Any, key: str,
               where: typing.Callable[[str], str] = lambda key: "") -> Any:
    """Return `value` (ints widened to float where a float is expected) or raise UserError."""
    ok, value = _match(value, tp)
    if not ok:
        raise UserError(f"{where(key)}{key}: expected {_describe(tp)}, got {value!r}")
    return value


def _match(value: Any, tp: Any) -> tuple[bool, Any]:
    if tp is Any:
        return True, value
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        for arm in typing.get_args(tp):
            ok, v = _match(value, arm)
            if ok:
                return True, v
        return False, value
    if origin is Literal:
        return value in typing.get_args(tp), value
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        if not isinstance(value, list):
            return False, value
        out = [_match(v, item) for v in value]
        return all(ok for ok, _ in out), [v for _, v in out]
    if origin is dict:
        return isinstance(value, dict), value
    if tp is type(None):
        return value is None, value
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
        return False, value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if isinstance(tp, type):
        return isinstance(value, tp), value
    return True, value


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        return f"a list of {_describe(item)}"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def describe_fields(cls: type) -> list[tuple[str, str, Any, str]]:
    """(name, type, default, help) for each field: what `show` prints."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else "(required)")
        rows.append((f.name, _describe(hints[f.name]), default, f.metadata.get("help", "")))
    return rows

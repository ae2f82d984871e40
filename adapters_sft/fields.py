"""Build typed dataclasses from plain dicts, with errors that name the dotted key.

Recipe sections and strategy options are dataclasses whose fields carry a `help` string in
their metadata, and numbers their `Range`. `build(cls, values, prefix)` checks unknown keys
(with a did-you-mean), value types and ranges, so `strategy.r: "eight"` fails as
`strategy.r: expected int, got 'eight'` and `strategy.r: 0` as `strategy.r: must be at least
1, got 0`. tests/test_ranges.py walks every option so a new number cannot skip its range.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Literal, TypeVar, Union

from .errors import UserError, did_you_mean

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Range:
    """The values a number may take: from `low` to `high`, either end open or absent.
    Non-finite values (nan, inf) are never in range."""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def problem(self, value: float) -> str | None:
        """'must be ..., got X' for a value outside, else None."""
        if not math.isfinite(value):
            return f"must be a finite number, got {value}"
        below = self.low is not None and (value < self.low or (self.low_open and value == self.low))
        above = self.high is not None and (value > self.high or (self.high_open and value == self.high))
        return f"must be {self}, got {value}" if below or above else None

    def __str__(self) -> str:
        if self.high is None:
            return f"{'above' if self.low_open else 'at least'} {_number(self.low)}"
        if self.low is None:
            return f"{'below' if self.high_open else 'at most'} {_number(self.high)}"
        return (f"in {'(' if self.low_open else '['}{_number(self.low)}, "
                f"{_number(self.high)}{')' if self.high_open else ']'}")


def _number(value: float | None) -> str:
    return str(int(value)) if value is not None and float(value).is_integer() else str(value)


def check_range(value: Any, allowed: Range | None, key: str,
                where: typing.Callable[[str], str] = lambda key: "") -> None:
    """UserError naming `key` when a number is outside `allowed` (or, lacking one, not finite)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    problem = (allowed or Range()).problem(value)
    if problem:
        raise UserError(f"{where(key)}{key}: {problem}")


def option(default: Any, help: str, range: Range | None = None, **kw: Any) -> Any:  # noqa: A002
    """A dataclass field with a help string (shown by `adapters-sft show`) and, for a
    number, the range `build` enforces."""
    meta = {"help": help, **({"range": range} if range else {})}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata=meta, **kw)
    return dataclasses.field(default=default, metadata=meta, **kw)


def build(cls: type[T], values: dict[str, Any], prefix: str,
          where: typing.Callable[[str], str] = lambda key: "") -> T:
    """`cls(**values)` with unknown keys and wrong types reported as UserError."""
    if not isinstance(values, dict):
        raise UserError(f"{where(prefix)}{prefix}: expected a mapping of keys, got {values!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    check_keys(cls, values, prefix, where)
    for key, value in values.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        kwargs[key] = check_type(value, hints[key], dotted, where)
        check_range(kwargs[key], fields[key].metadata.get("range"), dotted, where)
    try:
        return cls(**kwargs)
    except UserError as exc:  # __post_init__ checks name their key; add the file:line
        msg = str(exc)
        key = msg.split(":", 1)[0]
        raise UserError(f"{where(key)}{msg}") from None


def check_keys(cls: type, values: dict[str, Any], prefix: str,
               where: typing.Callable[[str], str] = lambda key: "") -> None:
    """A UserError for the first key of `values` that is not a field of `cls`, naming it with a
    suggestion (a close spelling, or this tool's name for another tool's key) and the valid keys."""
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    for key in values:
        if key not in names:
            from .key_aliases import suggest

            dotted = f"{prefix}.{key}" if prefix else str(key)
            raise UserError(f"{where(dotted)}unknown key '{dotted}'{suggest(str(key), prefix, names)}; "
                            f"valid keys under '{prefix or 'top level'}': {', '.join(names)}")


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
        kind = _describe(hints[f.name]) + (f", {f.metadata['range']}" if "range" in f.metadata else "")
        rows.append((f.name, kind, default, f.metadata.get("help", "")))
    return rows

"""Read a recipe's data: every source, one format per split, normalised rows with their
locations, an optional seeded validation split. Bad rows are collected (the first few are
reported together, each as `file:line: field: what is wrong`) and nothing is trained.
"""
from __future__ import annotations

import dataclasses
import json
import random
from typing import TYPE_CHECKING, Any

from ..errors import UserError
from . import formats, sources

if TYPE_CHECKING:
    from ..recipe import Recipe

MAX_REPORTED = 3


@dataclasses.dataclass
class Split:
    rows: list[dict[str, Any]]  # normalised (see formats.py)
    where: list[str]            # file:line of each row, for reports
    origin: list[int] | None = None  # a mixed data.train: each row's source (data/mix.py)


@dataclasses.dataclass
class Splits:
    train: Split
    eval: Split | None
    format: str    # the format the files are written in
    kind: str      # what it was normalised to: messages, prompt-completion, text, classification
    warnings: list[str]
    mix: list[dict[str, Any]] | None = None  # a mixed data.train: each source's facts (data/mix.py)
    replay: list[dict[str, Any]] | None = None  # data.replay's rows, all of them (data/replay.py)


def read_split(ref: str, key: str, fmt: str = "auto", columns: dict[str, str] | None = None) -> tuple[Split, str]:
    """All rows of one reference, normalised, plus the format they were read as."""
    rows: list[dict[str, Any]] = []
    where: list[str] = []
    problems: list[str] = []
    label_type: tuple[type, str] | None = None
    forced = fmt != "auto"
    first = ""
    for row in sources.read(ref, key):
        if row.problem is None and columns and isinstance(row.value, dict):
            row.value = {columns.get(k, k): v for k, v in row.value.items()}
        if row.problem is None and fmt == "auto":
            fmt, first = formats.detect(row.value) or "auto", row.where
            if fmt == "auto":
                fields = sorted(row.value) if isinstance(row.value, dict) else type(row.value).__name__
                problems.append(f"{row.where}: cannot tell the format from fields {fields}; expected "
                                f"one of {', '.join(formats.FORMATS)} (see docs/data.md), or map "
                                "your columns with data.columns")
                break
        try:
            if row.problem:
                raise formats.RowProblem(row.problem)
            value = formats.normalise(row.value, fmt, forced)
            if fmt == "classification":  # one label type per dataset, or labels silently split
                if label_type and type(value["label"]) is not label_type[0]:
                    raise formats.RowProblem(
                        f"field 'label' is of type {type(value['label']).__name__} but {label_type[1]} has type "
                        f"{label_type[0].__name__}; use one label type throughout")
                label_type = label_type or (type(value["label"]), row.where)
        except formats.MixedFormats as exc:
            problems.append(f"{row.where}: {_mixed(exc.seen, row.where, fmt, first)}")
            break  # every later row of that file would say the same
        except formats.RowProblem as exc:
            problems.append(f"{row.where}: {_mapped(str(exc), columns)}")
            if len(problems) >= MAX_REPORTED:
                break
            continue
        rows.append(value)
        where.append(row.where)
    if problems:
        more = " (and possibly more)" if len(problems) >= MAX_REPORTED else ""
        raise UserError("; ".join(problems) + more + "; fix or remove these rows")
    if not rows:
        raise UserError(f"{key}: '{ref}' holds no rows; give a file with one example per line or record")
    return Split(rows, where), fmt


def _same_label_type(train: Split, held: Split, key: str) -> None:
    """Labels 1 and "1" are different classes: a held-out set typed differently from the
    training set would otherwise be reported as labels never seen in training."""
    ours, theirs = type(train.rows[0]["label"]), type(held.rows[0]["label"])
    if ours is not theirs:
        raise UserError(f"{key}: {held.where[0]}: label {held.rows[0]['label']!r} is {theirs.__name__} "
                        f"but training labels are {ours.__name__} ({train.where[0]}: "
                        f"{train.rows[0]['label']!r}); write labels the same way in both files")


def _mixed(seen: str, where: str, fmt: str, first: str) -> str:
    """Say which two places disagree: two files of a folder, or two rows of one file."""
    this, that = sources.file_of(where), sources.file_of(first)
    if this != that:
        return (f"this file is {seen} but {that} (read first) is {fmt}; every file of a folder "
                "must hold one format: convert one of them or move it out (or set data.format)")
    return (f"mixed formats: this row is {seen} but {first} is {fmt}; keep one format per file "
            "(or set data.format)")


def _mapped(message: str, columns: dict[str, str] | None) -> str:
    """Name the user's own column where data.columns renamed it."""
    for theirs, ours in (columns or {}).items():
        message = message.replace(f"field '{ours}'", f"field '{theirs}' (data.columns -> {ours})")
    return message


def carve(split: Split, val_size: float, seed: int, key: str) -> tuple[Split, Split]:
    """A seeded (train, validation) split; `val_size` is a fraction (<1) or a row count."""
    n = len(split.rows)
    count = round(val_size * n) if val_size < 1 else int(val_size)
    if val_size <= 0 or (val_size >= 1 and val_size != int(val_size)) or not 1 <= count < n:
        raise UserError(f"{key}: {val_size} leaves no rows for one side ({n} rows in all); give a "
                        "fraction between 0 and 1 or a whole count below the row count")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    held = sorted(order[:count])
    kept = sorted(order[count:])
    def pick(idx: list[int]) -> Split:
        origin = [split.origin[i] for i in idx] if split.origin is not None else None
        return Split([split.rows[i] for i in idx], [split.where[i] for i in idx], origin)

    return pick(kept), pick(held)


def duplicates(split: Split) -> str | None:
    seen: dict[str, str] = {}
    dups: list[tuple[str, str]] = []
    for row, where in zip(split.rows, split.where):
        key = json.dumps(row, sort_keys=True)
        if key in seen:
            dups.append((where, seen[key]))
        else:
            seen[key] = where
    if not dups:
        return None
    first = ", ".join(f"{a} repeats {b}" for a, b in dups[:3])
    return f"{len(dups)} duplicate row(s) ({first}); they weigh those examples more"


def load_splits(recipe: Recipe) -> Splits:
    """The recipe's train and eval data, read, validated and normalised."""
    d = recipe.data

    def located(key: str) -> str:
        return recipe.where(key) + key

    mixed = None
    if isinstance(d.train, list):
        train, fmt, mixed = read_mix(recipe, located("data.train"))
    else:
        train, fmt = read_split(d.train, located("data.train"), d.format, d.columns)
    held = None
    if d.eval:
        held, eval_fmt = read_split(d.eval, located("data.eval"), "auto", d.columns)
        if formats.kind_of(eval_fmt) != formats.kind_of(fmt):
            raise UserError(f"{located('data.eval')}: held-out rows are {eval_fmt} but training rows "
                            f"are {fmt}; give both in the same kind of format")
        if fmt == "classification":
            _same_label_type(train, held, located("data.eval"))
    elif d.val_size is not None:
        train, held = carve(train, d.val_size, recipe.seed, located("data.val_size"))
    warnings = [f"data.train: {w}" for w in [duplicates(train)] if w and mixed is None]
    return Splits(train, held, fmt, formats.kind_of(fmt), warnings, mixed)


def read_mix(recipe: Recipe, key: str) -> tuple[Split, str, list[dict[str, Any]]]:
    """A list-valued data.train: each source read in its own format, then mixed (data/mix.py).
    Its format is the mixed rows' kind; each source's own is in the facts."""
    from . import mix

    d = recipe.data
    srcs = mix.sources(d.train, "data.train", recipe.where)
    parts = []
    for i, src in enumerate(srcs):
        split, fmt = read_split(src.path, f"{key}[{i}]", src.format, {**d.columns, **src.columns})
        parts.append((src.path, split, fmt))
    (rows, where, origin), kind, facts = mix.combine(parts, srcs, recipe.seed, "data.train")
    return Split(rows, where, origin), kind, facts

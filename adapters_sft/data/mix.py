"""Data mixing: `data.train` as a list of sources, each read in its own format, each taking a
share of the training set (docs/data.md, "Mixing sources").

    data:
      train:
        - path: mine.jsonl                  # every row, once
        - {path: general.csv, weight: 0.2}  # 20% of the mixed set
        - {path: more.jsonl, rows: 100}     # 100 rows of it

A source without `weight` or `rows` gives all its rows. `rows: N` takes N of them (drawn
with the recipe's seed; past its size, every row again before any repeats a third time).
`weight: w` sizes a source to the share w of the mixed set: the other sources' rows are the
rest (the weights of the weighted sources together below 1); where every source is weighted,
the mix keeps the sources' total row count. Sources of one kind mix; conversations and
prompt-completion rows mix as conversations (a completion is the assistant turn after its
prompt, with the same loss mask). Rows keep their file:line, so every check names the file.
"""
from __future__ import annotations

import dataclasses
import random
from typing import TYPE_CHECKING, Any, Callable

from ..errors import UserError
from ..fields import Range, build, option

if TYPE_CHECKING:
    from .load import Split

CHAT_KINDS = ("messages", "prompt-completion")


@dataclasses.dataclass
class Source:
    path: str = option("", "a file, folder, builtin:NAME or hub:ID, as data.train takes")
    weight: float | None = option(None, "its share of the mixed training set", Range(0, 1, True, True))
    rows: int | None = option(None, "or: this many of its rows", Range(1))
    format: str = option("auto", "its format (auto: detected)")
    columns: dict = option({}, "its column renames, over data.columns")


def sources(train: list[Any], key: str, where: Callable[[str], str] = lambda k: "") -> list[Source]:
    """The entries of a list-valued data.train, checked: a reference string or a mapping."""
    if not train:
        raise UserError(f"{where(key)}{key}: an empty list; give a data file, or a list of sources")
    out = []
    for i, entry in enumerate(train):
        at = f"{key}[{i}]"
        src = build(Source, {"path": entry} if isinstance(entry, str) else entry, at, lambda k: where(key))
        if not src.path:
            raise UserError(f"{where(key)}{at}.path: missing; each source needs a path")
        from .formats import FORMATS

        if src.format not in ("auto", *FORMATS):
            raise UserError(f"{where(key)}{at}.format: must be auto or one of {', '.join(FORMATS)}, "
                            f"got '{src.format}'")
        if src.weight is not None and src.rows is not None:
            raise UserError(f"{where(key)}{at}: give weight or rows, not both")
        out.append(src)
    weights = [s.weight for s in out if s.weight is not None]
    if len(weights) < len(out) and sum(weights) >= 1:
        raise UserError(f"{where(key)}{key}: the weights add up to {sum(weights):g}, leaving no share "
                        "for the sources without one; keep their sum below 1")
    return out


def counts(sizes: list[int], srcs: list[Source]) -> list[int]:
    """How many rows each source gives the mix (module docstring)."""
    fixed = [s.rows if s.rows is not None else n for s, n in zip(srcs, sizes) if s.weight is None]
    weights = [s.weight for s in srcs if s.weight is not None]
    if not fixed:  # every source weighted: their shares of the sources' own total
        total, scale = sum(sizes), sum(weights)
    else:
        total, scale = sum(fixed) / (1 - sum(weights)), 1.0
    return [max(1, round(s.weight / scale * total)) if s.weight is not None else
            (s.rows if s.rows is not None else n) for s, n in zip(srcs, sizes)]


def draw(rows: list[Any], where: list[str], count: int, seed: int) -> tuple[list[Any], list[str]]:
    """`count` of the rows (with their places): all in order, or a seeded draw, cycling past
    their number."""
    n = len(rows)
    if count == n:
        return rows, where
    rng, order = random.Random(seed), []
    while len(order) < count:
        cycle = list(range(n))
        rng.shuffle(cycle)
        order += cycle[:count - len(order)]
    return [rows[i] for i in order], [where[i] for i in order]


def as_conversation(row: dict[str, Any]) -> dict[str, Any]:
    """A prompt-completion row as the conversation it trains as: the prompt's turns (a string
    prompt is one user turn), then the completion's (a string is one assistant turn)."""
    prompt, completion = row["prompt"], row["completion"]
    turns = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
    answer = completion if isinstance(completion, list) else [{"role": "assistant", "content": completion}]
    return {"messages": [*turns, *answer]}


def combine(parts: list[tuple[str, Split, str]], srcs: list[Source], seed: int,
            key: str) -> tuple[tuple[list[Any], list[str], list[int]], str, list[dict[str, Any]]]:
    """((the mixed rows, their places, each one's source), their kind, facts per source) from
    each source's (name, split, format)."""
    from .formats import kind_of

    kinds = [kind_of(fmt) for _, _, fmt in parts]
    kind = kinds[0] if len(set(kinds)) == 1 else "messages"
    if len(set(kinds)) > 1 and not set(kinds) <= set(CHAT_KINDS):
        i = next(i for i, k in enumerate(kinds) if k != kinds[0])
        raise UserError(f"{key}[{i}]: {parts[i][0]} holds {kinds[i]} rows but {key}[0] holds "
                        f"{kinds[0]} rows; mix sources of one kind (conversations and prompt-completion "
                        "rows mix, as conversations)")
    sizes = [len(split.rows) for _, split, _ in parts]
    rows, where, origin, facts = [], [], [], []
    for i, ((name, split, fmt), n) in enumerate(zip(parts, counts(sizes, srcs))):
        taken, places = draw(split.rows, split.where, n, seed + i)
        convert = kind == "messages" and kinds[i] == "prompt-completion"
        rows += [as_conversation(r) for r in taken] if convert else taken
        where += places
        origin += [i] * n
        facts.append({"source": name, "format": fmt, "available": len(split.rows), "rows": n,
                      "weight": srcs[i].weight, "converted": convert, "hash": rows_hash(split.rows)})
    total = len(rows)
    for fact in facts:
        fact["share"] = fact["rows"] / total
    return (rows, where, origin), kind, facts


def rows_hash(rows: list[Any]) -> str:
    """sha256 of a source's rows (all of them, not only those drawn): what resume compares."""
    import hashlib
    import json

    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps(row, sort_keys=True, default=str).encode() + b"\n")
    return digest.hexdigest()[:16]


def describe(fact: dict[str, Any]) -> str:
    """One source of the mix, as `check` prints it."""
    repeated = f", each about {fact['rows'] / fact['available']:.1f} times" if fact["rows"] > fact["available"] \
        else (f" of {fact['available']}" if fact["rows"] < fact["available"] else "")
    how = ", trained as conversations" if fact["converted"] else ""
    return f"{fact['source']} ({fact['format']}{how}): {fact['rows']} rows{repeated}, {fact['share']:.1%} of the mix"

"""Where rows come from: JSONL, JSON, CSV, Parquet, a folder of those, bundled data, or a hub
dataset. Every row carries its location so a later problem can point at it: `file:line` for
JSONL and CSV, `file: record N` for JSON, Parquet and hub rows.

References (`data.train` / `data.eval`):
  path/to/file.{jsonl,json,csv,parquet}   one file
  path/to/folder                          every such file in it, sorted by name
  builtin:NAME                            bundled data (adapters_sft/datasets/NAME.jsonl)
  hub:ID[:CONFIG][@SPLIT]                 a hub dataset through `datasets` (split: train)
"""
from __future__ import annotations

import csv
import dataclasses
import importlib.resources
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import UserError, did_you_mean

BUILTIN = "builtin:"
HUB = "hub:"
SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
# One row above this is a mistake (a whole corpus on one line) far more often than a real
# example, and training truncates to data.max_length tokens anyway.
MAX_ROW_BYTES = 4 * 2**20


@dataclasses.dataclass
class Row:
    where: str  # "file:line" or "file: record N"
    value: Any  # the parsed record; None when `problem` says why it could not be read
    problem: str | None = None


def resolve(ref: str, key: str) -> list[Path]:
    """The files a local or bundled reference names; UserError naming `key` if none."""
    if ref.startswith(BUILTIN):
        rel = ref[len(BUILTIN):]
        root = Path(str(importlib.resources.files("adapters_sft.datasets")))
        path = root / f"{rel}.jsonl"
        if not path.is_file():
            known = sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.jsonl"))
            raise UserError(f"{key}: no bundled dataset '{rel}'{did_you_mean(rel, known)}; "
                            f"bundled: {', '.join(known)}")
        return [path]
    path = Path(ref).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file()
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        if not files:
            raise UserError(f"{key}: folder '{ref}' holds no {'/'.join(SUFFIXES)} files; "
                            "point it at a data file or a folder of them")
        return files
    if not path.is_file():
        raise UserError(f"{key}: file '{ref}' not found; check the path (relative paths start "
                        "from the current directory), or use hub:ID for a hub dataset")
    if path.suffix not in SUFFIXES:
        raise UserError(f"{key}: '{ref}' is not a data file this tool reads; use "
                        f"{', '.join(SUFFIXES)} (or a folder of them)")
    return [path]


def read(ref: str, key: str) -> Iterator[Row]:
    """Every row a reference names, in order."""
    if ref.startswith(HUB):
        yield from _hub(ref, key)
        return
    for path in resolve(ref, key):
        yield from {".jsonl": _jsonl, ".json": _json, ".csv": _csv, ".parquet": _parquet}[path.suffix](path, key)


def iter_jsonl(path: Path, key: str) -> Iterator[tuple[int, Any, str | None]]:
    """(line number, parsed value, None) for each non-blank line, or (line number, None,
    'what is wrong') for a line that does not parse, so callers choose whether to collect
    problems or stop at the first. An unreadable or non-UTF-8 file is a UserError."""
    try:
        handle = open(path, "rb")  # decoded line by line, so a bad byte is reported on its line
    except OSError as exc:
        raise UserError(f"{key}: cannot open '{path}': {exc.strerror}") from None
    with handle:
        for lineno, raw in enumerate(handle, 1):
            if len(raw) > MAX_ROW_BYTES:
                yield lineno, None, (f"line is {len(raw) / 2**20:.1f} MB, over the "
                                     f"{MAX_ROW_BYTES // 2**20} MB limit for one row; split it into rows")
                continue
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")  # tolerate a BOM
            except UnicodeDecodeError as exc:
                yield lineno, None, f"not UTF-8 text (byte {exc.start + 1} of the line); save the file as UTF-8"
                continue
            if not line.strip():
                continue
            line = line.rstrip("\r\n")  # else a line cut short is blamed on column 1 of the next
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                yield lineno, None, _json_problem(exc, line)
                continue
            problem = _surrogate(value) if "\\u" in line else None
            yield lineno, (None if problem else value), problem


def _json_problem(exc: json.JSONDecodeError, line: str) -> str:
    """'invalid JSON (what at column N)', saying so when the line ends mid-value."""
    at = f"{exc.msg} column {exc.colno}" if exc.msg.endswith(" at") else f"{exc.msg} at column {exc.colno}"
    cut = exc.pos >= len(line.rstrip()) or exc.msg.startswith("Unterminated string")
    return f"invalid JSON ({at})" + (" (the line ends before its JSON does: cut short?)" if cut else "")


def file_of(where: str) -> str:
    """The file part of a Row's `where` ("file:line" or "file: record N")."""
    head, sep, _ = where.rpartition(": record ")
    return head if sep else where.rpartition(":")[0] or where


def _surrogate(value: Any) -> str | None:
    """What is wrong with a parsed JSON value holding a lone UTF-16 surrogate ("\\ud800" is
    valid JSON but not a character: it cannot be written as UTF-8), or None. Only a JSON
    escape can produce one; text decoded from UTF-8 never holds them."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(exc.object[exc.start])
        return (f"a string holds a lone surrogate escape (\\u{code:04x}), which is not a "
                "character; remove it or pair it into a valid character")
    return None


def _jsonl(path: Path, key: str) -> Iterator[Row]:
    for lineno, value, problem in iter_jsonl(path, key):
        if lineno == 1 and (isinstance(value, list) or problem and _one_json_list(path)):
            raise UserError(f"{path}: holds one JSON list of records, not one record per line; "
                            f"rename it to {path.with_suffix('.json').name} (read as one list)")
        yield Row(f"{path}:{lineno}", value, problem)


def _one_json_list(path: Path) -> bool:
    """Whether the whole file is one JSON list: a .json file saved as .jsonl."""
    try:
        return isinstance(json.loads(path.read_bytes()), list)
    except (ValueError, OSError, MemoryError):
        return False


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        raise UserError(f"{path}:{line}: not UTF-8 text; save the file as UTF-8") from None


def _json(path: Path, key: str) -> Iterator[Row]:
    try:
        records = json.loads(_text(path))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg} at column {exc.colno}); "
                        "fix the file (a .json file holds one list of records)") from None
    if not isinstance(records, list):
        raise UserError(f"{path}: expected a JSON list of records, got a {type(records).__name__}; "
                        "wrap the records in [...] or write one per line as .jsonl")
    for i, value in enumerate(records, 1):
        problem = _surrogate(value)
        yield Row(f"{path}: record {i}", None if problem else value, problem)


def _csv(path: Path, key: str) -> Iterator[Row]:
    # csv's own line handling (newline=""), not str.splitlines(): that also splits at U+2028,
    # U+0085 and other characters that are ordinary text inside a field.
    reader = csv.DictReader(io.StringIO(_text(path), newline=""))
    header = reader.fieldnames or []
    if len(set(header)) != len(header) or any(not h for h in header):
        raise UserError(f"{path}:1: the header has empty or repeated column names ({header}); "
                        "give every column a unique name")
    start = 2
    for record in reader:
        where = f"{path}:{start}"
        start = reader.line_num + 1
        if None in record:
            yield Row(where, None, f"{len(header) + len(record[None])} fields but the header has "
                                   f"{len(header)}; quote fields that contain commas")
        elif any(v is None for v in record.values()):
            missing = [k for k, v in record.items() if v is None]
            yield Row(where, None, f"missing column(s) {', '.join(missing)}: the row has fewer "
                                   "fields than the header")
        else:
            yield Row(where, dict(record))


def _parquet(path: Path, key: str) -> Iterator[Row]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise UserError(f"{path}: cannot read as Parquet ({str(exc).splitlines()[0][:200]}); "
                        "check the file") from None
    for i, value in enumerate(table.to_pylist(), 1):
        yield Row(f"{path}: record {i}", value)


def parse_hub(ref: str) -> tuple[str, str | None, str]:
    """`hub:ID[:CONFIG][@SPLIT]` -> (id, config, split)."""
    body, _, split = ref[len(HUB):].partition("@")
    name, _, config = body.partition(":")
    return name, config or None, split or "train"


def _hub(ref: str, key: str) -> Iterator[Row]:
    from datasets import load_dataset

    name, config, split = parse_hub(ref)
    if not name:
        raise UserError(f"{key}: '{ref}' names no dataset; write hub:ID[:CONFIG][@SPLIT]")
    from .. import hub

    offline = hub.offline_reason()  # offline: the local cache only, at once, not retries
    try:
        dataset = load_dataset(name, config, split=split)
    except Exception as exc:  # network, missing dataset, bad config: datasets uses many types
        reason = (f"{offline}, and it is not in the local cache" if offline else
                  (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200])
        raise UserError(f"{key}: cannot load hub dataset '{name}' (config {config}, split "
                        f"{split}): {reason}; check the id, or download the files and point "
                        f"{key.rpartition(': ')[2]} at them") from None
    for i, value in enumerate(dataset, 1):
        yield Row(f"{ref}: record {i}", value)

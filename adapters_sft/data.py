"""Training data: read JSONL, detect the format, validate, hand TRL a `datasets.Dataset`.

Formats (one JSON object per line), each one of TRL's own:
  messages           {"messages": [{"role": "user", "content": ...}, {"role": "assistant", ...}]}
  prompt-completion  {"prompt": ..., "completion": ...}
  text               {"text": ...}
Bad lines are collected (the first few are reported together) as `file:line: what; fix`.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import UserError

_ROLES = ("system", "user", "assistant")
_MAX_REPORTED = 3


def detect_format(row: dict[str, Any]) -> str | None:
    if "messages" in row:
        return "messages"
    if "prompt" in row and "completion" in row:
        return "prompt-completion"
    if "text" in row:
        return "text"
    return None


def _row_problem(row: Any, fmt: str) -> str | None:
    """What is wrong with one row, or None."""
    if not isinstance(row, dict):
        return f"expected a JSON object, got {type(row).__name__}"
    if fmt == "messages":
        msgs = row.get("messages")
        if not isinstance(msgs, list) or not msgs:
            return "field 'messages' must be a non-empty list of {role, content} objects"
        for i, m in enumerate(msgs):
            if not isinstance(m, dict) or not isinstance(m.get("content"), str):
                return f"messages[{i}].content must be a string"
            if m.get("role") not in _ROLES:
                return f"messages[{i}].role is {m.get('role')!r}; expected one of {', '.join(_ROLES)}"
        if not any(m["role"] == "assistant" for m in msgs):
            return "no assistant message, so nothing to learn from this row"
        return None
    fields = ("prompt", "completion") if fmt == "prompt-completion" else ("text",)
    for f in fields:
        if not isinstance(row.get(f), str):
            return f"field '{f}' must be a string (got {type(row.get(f)).__name__})"
    return None


def iter_jsonl(path: Path, key: str) -> Iterator[tuple[int, Any, str | None]]:
    """(line number, parsed value, None) for each non-blank line, or (line number, None,
    'invalid JSON ...') for a line that does not parse, so callers choose whether to collect
    problems or stop at the first. An unreadable or non-UTF-8 file is a UserError."""
    try:
        handle = open(path, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{key}: cannot open '{path}': {exc.strerror}") from None
    with handle:
        try:
            for lineno, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    yield lineno, json.loads(line), None
                except json.JSONDecodeError as exc:
                    yield lineno, None, f"invalid JSON ({exc.msg} at column {exc.colno})"
        except UnicodeDecodeError as exc:
            raise UserError(f"{path}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None


def read_rows(path: Path, key: str, fmt: str = "auto") -> tuple[list[dict[str, Any]], str]:
    """Every row of a JSONL file plus its format; raises UserError naming file:line."""
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    for lineno, row, bad_json in iter_jsonl(path, key):
        if bad_json:
            problems.append(f"{path}:{lineno}: {bad_json}")
            continue
        if fmt == "auto" and isinstance(row, dict):
            fmt = detect_format(row) or "auto"
            if fmt == "auto":
                problems.append(f"{path}:{lineno}: cannot tell the format from fields "
                                f"{sorted(row)}; expected 'messages', 'prompt'+'completion' "
                                "or 'text' (or set data.format)")
                break
        problem = _row_problem(row, fmt if fmt != "auto" else "text")
        if problem:
            problems.append(f"{path}:{lineno}: {problem}")
        else:
            rows.append(row)
        if len(problems) >= _MAX_REPORTED:
            break
    if problems:
        more = " (and possibly more)" if len(problems) >= _MAX_REPORTED else ""
        raise UserError("; ".join(problems) + more + "; fix or remove these lines")
    if not rows:
        raise UserError(f"{key}: '{path}' holds no rows; give a JSONL file with one example per line")
    return rows, fmt


def to_dataset(rows: list[dict[str, Any]], fmt: str) -> Any:
    """Keep only the columns TRL reads for this format."""
    from datasets import Dataset

    cols = {"messages": ("messages",), "prompt-completion": ("prompt", "completion"),
            "text": ("text",)}[fmt]
    return Dataset.from_list([{c: r[c] for c in cols} for r in rows])

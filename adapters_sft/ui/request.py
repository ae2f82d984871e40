"""What a request to the UI says, read once and defensively, for the access check and the router
alike: the target in either form HTTP/1.1 allows (origin form `/api/runs?x=1`, absolute form
`http://127.0.0.1:7860/api/runs`), percent-decoded, with dot segments refused rather than
resolved; the JSON body, its size bounded before anything is read; and typed fields.

The access check and the router both read `Target.path`, so no spelling of a path can reach a
route without passing the check (server.py checks every path but the page's own files).
"""
from __future__ import annotations

import dataclasses
import hmac
import json
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import UserError

MAX_BODY = 1 << 20  # 1 MiB: the page's largest post is a chat message or a list of overrides


class Refused(Exception):
    """A request answered with `status` and a one-line JSON error."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclasses.dataclass(frozen=True)
class Target:
    path: str               # percent-decoded, no dot segments
    query: dict[str, str]   # the first value of each key
    host: str | None        # the host an absolute-form target names


def target(raw: str) -> Target:
    if raw.startswith("/"):  # origin form: split by hand ("//x/y" is a path here, not a host)
        path, _, query = raw.split("#", 1)[0].partition("?")
        host = None
    else:
        parts = urlsplit(raw)
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise Refused(400, "the request target must be a path or an absolute http URL")
        path, query, host = parts.path or "/", parts.query, (parts.hostname or "")
    path = unquote(path, errors="strict")
    segments = path.split("/")[1:]
    if "\x00" in path or any(s in (".", "..") for s in segments) or "" in segments[:-1]:
        raise Refused(400, "the path has '.', '..' or empty segments; send it in its plain form")
    return Target(path, {k: v[0] for k, v in parse_qs(query).items()}, host)


def host_of(header: str) -> str:
    """The host of a Host header: `name`, `name:port`, `[v6]` or `[v6]:port`."""
    header = header.strip()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def token_matches(given: str, token: str) -> bool:
    """Constant-time comparison of bytes (a header is read as Latin-1: any byte is a character)."""
    return hmac.compare_digest(given.encode("latin-1", "replace"), token.encode())


def body(headers: Any, stream: Any) -> dict[str, Any]:
    """The JSON object a POST carries; its size is checked before any of it is read."""
    if not (headers.get("Content-Type") or "").startswith("application/json"):
        raise Refused(400, "requests must be JSON (Content-Type: application/json)")
    length = (headers.get("Content-Length") or "0").strip()
    if not length.isdigit():
        raise Refused(400, f"Content-Length: '{length[:40]}' is not a byte count")
    size = int(length)
    if size > MAX_BODY:
        raise Refused(413, f"the body is {size} bytes; the UI takes at most {MAX_BODY}")
    try:
        data = stream.read(size)
    except TimeoutError:
        raise Refused(408, "the body did not arrive in time") from None
    if len(data) < size:
        raise Refused(400, f"the body has {len(data)} of the {size} bytes its Content-Length says")
    try:
        parsed = json.loads(data or b"{}")
    except RecursionError:
        raise Refused(400, "the JSON body nests too deeply") from None
    except ValueError as exc:
        raise Refused(400, f"the body is not JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise Refused(400, "the request body must be a JSON object")
    return parsed


_MISSING = object()


def text(data: dict[str, Any], key: str, default: Any = _MISSING) -> str:
    value = data.get(key, default)
    if value is _MISSING:
        raise UserError(f"'{key}': missing from the request")
    if not isinstance(value, str):
        raise UserError(f"'{key}': must be a string, got {type(value).__name__}")
    return value


def texts(data: dict[str, Any], key: str) -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UserError(f"'{key}': must be a list of strings, got {type(value).__name__}")
    return value


def number(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"'{key}': must be an integer, got {type(value).__name__}")
    return value

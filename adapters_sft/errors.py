"""The one error type users see.

Every mistake a user can make (bad recipe key, missing file, malformed line, missing
optional dependency) is raised as `UserError`: the CLI prints its message on one line and
exits with status 2, with no traceback. The message names what is wrong, where (a recipe
key or file:line) and what to do.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager


class UserError(Exception):
    """A problem with the user's input; printed as one line, exit status 2."""


class CheckFailed(Exception):
    """A result failed its own verification (a merge drifted, an export did not round-trip);
    nothing was written. Printed as one line, exit status 1."""


def did_you_mean(word: str, choices: Iterable[str], cutoff: float = 0.5) -> str:
    """' (did you mean X?)' for the closest known name, or '' when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=cutoff)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Interrupted(Exception):
    """SIGINT/SIGTERM stopped training after saving a checkpoint; printed as one line, exit
    status 128 + the signal number."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type name when it has none); a first
    line that ends in ':' only announces the next, so both are kept."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    text = f"{lines[0]} {lines[1]}" if lines[0].endswith(":") and len(lines) > 1 else lines[0]
    return text[:limit]


def _expected_load_failure(exc: BaseException) -> bool:
    """What reading a damaged, mistyped or missing file raises: OSError (missing, hub
    unreachable), ValueError (bad JSON, unknown model type, undecodable text), safetensors'
    header errors and huggingface_hub's typed-config errors (a field of the wrong type)."""
    module = type(exc).__module__
    return isinstance(exc, (OSError, ValueError)) or module.startswith(("safetensors", "huggingface_hub"))


@contextmanager
def unreadable(what: str, fix: str, reason: bool = True) -> Iterator[None]:
    """Turn the expected failures of loading `what` into one line: what, why, and `fix`.
    Anything else (a bug of ours) keeps its traceback."""
    try:
        yield
    except UserError:
        raise
    except Exception as exc:
        if not _expected_load_failure(exc):
            raise
        raise UserError(f"{what}: {first_line(exc)}; {fix}" if reason else f"{what}; {fix}") from None

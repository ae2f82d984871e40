"""The one error type users see.

Every mistake a user can make (bad recipe key, missing file, malformed line, missing
optional dependency) is raised as `UserError`: the CLI prints its message on one line and
exits with status 2, with no traceback. The message names what is wrong, where (a recipe
key or file:line) and what to do.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """A problem with the user's input; printed as one line, exit status 2."""


class CheckFailed(Exception):
    """A result failed its own verification (a merge drifted, an export did not round-trip);
    nothing was written. Printed as one line, exit status 1."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean X?)' for the closest known name, or '' when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Interrupted(Exception):
    """SIGINT/SIGTERM stopped training after saving a checkpoint; printed as one line, exit
    status 128 + the signal number."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum

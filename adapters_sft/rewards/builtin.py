"""The built-in rewards, declared in the entry-point group `adapters_sft.rewards` like a
third party's. Each scores an answer's text; `columns()` names the data columns it reads."""
from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from ..fields import Range, option
from .base import Reward


@dataclasses.dataclass
class ColumnOptions:
    column: str = option("answer", "the data column holding the expected answer")
    ignore_case: bool = option(False, "compare without regard to case")


class _AgainstColumn(Reward):
    """A reward comparing each answer with the value of one data column."""
    Options = ColumnOptions

    def columns(self) -> list[str]:
        return [self.opts.column]


class ExactMatch(_AgainstColumn):
    name = "exact_match"
    summary = "1 when the stripped answer equals the column's value (stripped), else 0"
    exact = True

    def score(self, answers: list[str], columns: dict[str, list[Any]], completion_ids: list[list[int]],
              prompts: list[Any]) -> list[float | None]:
        fold = str.casefold if self.opts.ignore_case else str
        return [float(fold(a.strip()) == fold(str(ref).strip())) for a, ref in zip(answers, columns[self.opts.column])]


class Contains(_AgainstColumn):
    name = "contains"
    summary = "1 when the answer contains the column's value, else 0"

    def score(self, answers: list[str], columns: dict[str, list[Any]], completion_ids: list[list[int]],
              prompts: list[Any]) -> list[float | None]:
        fold = str.casefold if self.opts.ignore_case else str
        return [float(fold(str(ref).strip()) in fold(a)) for a, ref in zip(answers, columns[self.opts.column])]


@dataclasses.dataclass
class RegexOptions:
    pattern: str = option("", "a Python regular expression (required)")
    full: bool = option(True, "the whole stripped answer must match (false: anywhere in it)")

    def __post_init__(self) -> None:
        from ..errors import UserError

        if not self.pattern:
            raise UserError("pattern: missing; give the format the answer must have, e.g. "
                            "'\\d{4}-\\d{2}-\\d{2}'")
        try:
            re.compile(self.pattern)
        except re.error as exc:
            raise UserError(f"pattern: {self.pattern!r} is not a regular expression ({exc})") from None


class Regex(Reward):
    name = "regex"
    summary = "1 when the answer matches a regular expression (a format reward), else 0"
    Options = RegexOptions

    def score(self, answers: list[str], columns: dict[str, list[Any]], completion_ids: list[list[int]],
              prompts: list[Any]) -> list[float | None]:
        pattern = re.compile(self.opts.pattern)
        match = pattern.fullmatch if self.opts.full else pattern.search
        return [float(match(a.strip() if self.opts.full else a) is not None) for a in answers]


@dataclasses.dataclass
class LengthOptions:
    max_tokens: int = option(0, "answers up to this many tokens score 0 (required)", Range(1))

    def __post_init__(self) -> None:
        from ..errors import UserError

        if not self.max_tokens:
            raise UserError("max_tokens: missing; give the length beyond which answers are penalised")


class Length(Reward):
    name = "length"
    summary = "0 up to max_tokens, then minus the excess as a share of max_tokens (at most -1)"
    Options = LengthOptions

    def score(self, answers: list[str], columns: dict[str, list[Any]], completion_ids: list[list[int]],
              prompts: list[Any]) -> list[float | None]:
        limit = self.opts.max_tokens
        return [-min(1.0, max(0, len(ids) - limit) / limit) for ids in completion_ids]


class Json(Reward):
    name = "json"
    summary = "1 when the stripped answer parses as JSON, else 0"

    def score(self, answers: list[str], columns: dict[str, list[Any]], completion_ids: list[list[int]],
              prompts: list[Any]) -> list[float | None]:
        def parses(text: str) -> bool:
            try:
                json.loads(text)
            except ValueError:
                return False
            return True

        return [float(bool(a.strip()) and parses(a.strip())) for a in answers]

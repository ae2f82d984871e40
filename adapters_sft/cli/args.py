"""What the verbs share: argument types (numbers with their ranges, checked as argparse reads
them, so `--batch-size 0` is one line and exit 2 before any model loads) and the libraries'
logging kept quiet."""
from __future__ import annotations

import argparse
from typing import Callable


def number(kind: type, low: float, inclusive: bool = True, high: float | None = None) -> Callable[[str], float]:
    """An argparse `type`: `kind` (int or float), finite, at least `low` (above it if not
    inclusive), at most `high`. The range rides on the parser as `.range`, for `--help`
    readers and for tests/test_ranges.py, which checks every numeric option has one."""
    from ..fields import Range

    allowed = Range(low, high, low_open=not inclusive)

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got '{text}'") from None
        problem = allowed.problem(value)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its messages
    parse.range = allowed  # type: ignore[attr-defined]
    return parse


class OneLineParser(argparse.ArgumentParser):
    """argparse's errors as one line (`adapters-sft: error: ...`, exit 2), like ours."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"adapters-sft: error: {self.prog}: {message}; see '{self.prog} --help'\n")


def quiet_libraries() -> None:
    """Keep the terminal to our lines and the Trainer's progress bar."""
    import warnings

    import datasets
    import transformers

    warnings.filterwarnings("ignore", message=".*pin_memory.*")
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()  # weight-loading bars; the Trainer's bar stays
    datasets.disable_progress_bars()

"""The reward interface, and the callable TRL's GRPOTrainer is handed for each reward.

A reward scores each sampled answer (a number; higher is better). Built-ins and plugins are
`Reward` subclasses, one `name` each, with an `Options` dataclass of their recipe keys (the
entry's `name` and `weight` are ours). A user's own function is called the way TRL calls
reward functions, so one written for TRL works here unchanged:
`f(prompts=, completions=, completion_ids=, trainer_state=, **columns) -> list[float]`, plain or
`async def`.

A reward that raises, or returns anything but one number (or None: no score) per answer,
raises `RewardFailed` naming the reward and the prompt it failed on; the grpo task saves a
checkpoint and stops the run with that line (tasks/grpo.py).
"""
from __future__ import annotations

import dataclasses
import numbers
from typing import Any, Callable, ClassVar

from ..errors import UserError


class RewardFailed(UserError):
    """A reward raised or returned something other than numbers during training."""


@dataclasses.dataclass
class NoOptions:
    pass


class Reward:
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions
    # its held-out mean is also reported as the exact-match share (eval)
    exact: ClassVar[bool] = False

    def __init__(self, opts: Any) -> None:
        self.opts = opts

    def columns(self) -> list[str]:
        """The data columns it reads (checked against the data before any model loads)."""
        return []

    def check(self, at: str) -> None:
        """Pre-flight checks beyond its options (a file it reads exists, ...); `at` names the
        entry in errors."""

    def score(self, answers: list[str], columns: dict[str, list[Any]], completion_ids: list[list[int]],
              prompts: list[Any]) -> list[float | None]:
        """One number per answer (the answer's text, stripped of nothing); `prompts` as TRL
        hands them (a list of messages, or a string)."""
        raise NotImplementedError


def text_of(completion: Any) -> str:
    """An answer as text: TRL hands conversational answers as [{role, content}] lists."""
    if isinstance(completion, list):
        return "".join(m.get("content", "") for m in completion if isinstance(m, dict))
    return str(completion)


def prompt_text(prompt: Any, limit: int = 120) -> str:
    """A prompt as one short line for an error message."""
    if isinstance(prompt, list):
        prompt = next((m.get("content", "") for m in reversed(prompt) if m.get("role") == "user"), "")
    line = " ".join(str(prompt).split())
    return repr(line if len(line) <= limit else line[: limit - 3] + "...")


@dataclasses.dataclass
class Scorer:
    """What TRL calls: one reward of the recipe, under the label its metrics carry
    (`rewards/LABEL/mean`). `fn` takes TRL's keyword arguments."""
    label: str
    fn: Callable[..., Any]
    weight: float
    exact: bool = False

    @property
    def __name__(self) -> str:  # TRL names a reward function's metrics after it
        return self.label

    def __call__(self, prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float | None]:
        from ..processes import all_reduce, world_size

        failed: RewardFailed | None = None
        try:
            values = self.check(_settled(self.fn(prompts=prompts, completions=completions, **kwargs)), prompts)
        except RewardFailed as exc:
            failed = exc
        except Exception as exc:  # noqa: BLE001 - foreign code: say which reward and which prompt
            culprit = self._culprit(prompts, completions, kwargs)
            failed = RewardFailed(f"reward '{self.label}' raised {type(exc).__name__}: {exc} "
                                  f"(prompt {prompt_text(prompts[culprit])})")
        # every process scores its own answers: all of them stop together (and checkpoint
        # together), not one alone while the others wait for it in the next collective
        if world_size() > 1 and all_reduce([float(failed is not None)], "max")[0] and failed is None:
            failed = RewardFailed(f"reward '{self.label}' failed in another process of the run (its line "
                                  "names the prompt)")
        if failed is not None:
            raise failed
        return values

    def check(self, out: Any, prompts: list[Any]) -> list[float | None]:
        if not isinstance(out, (list, tuple)) or len(out) != len(prompts):
            got = f"{len(out)} values" if isinstance(out, (list, tuple)) else type(out).__name__
            raise RewardFailed(f"reward '{self.label}' returned {got} for {len(prompts)} answers; it must "
                               f"return a list of one number per answer (prompt {prompt_text(prompts[0])})")
        for i, value in enumerate(out):
            if value is None:
                continue
            if not isinstance(value, numbers.Real):  # numpy's scalars are Real too
                raise RewardFailed(f"reward '{self.label}' returned {value!r} for answer {i}, not a number "
                                   f"(prompt {prompt_text(prompts[i])}); return floats (None skips an answer)")
        return [None if v is None else float(v) for v in out]

    def _culprit(self, prompts: list[Any], completions: list[Any], kwargs: dict[str, Any]) -> int:
        """The first answer the function fails on alone (0 if each passes alone): it is called
        again on each answer, which costs only when the run is stopping anyway."""
        for i in range(len(prompts)):
            one = {k: [v[i]] if isinstance(v, list) and len(v) == len(prompts) else v for k, v in kwargs.items()}
            try:
                _settled(self.fn(prompts=[prompts[i]], completions=[completions[i]], **one))
            except Exception:  # noqa: BLE001
                return i
        return 0


def _settled(out: Any) -> Any:
    """An `async def` reward's result (TRL accepts those too), awaited; others as they are."""
    import inspect

    if inspect.isawaitable(out):
        import asyncio

        return asyncio.run(_awaited(out))
    return out


async def _awaited(out: Any) -> Any:
    return await out


def plugin_fn(reward: Reward) -> Callable[..., list[float | None]]:
    """A Reward as a function of TRL's keyword arguments."""
    names = reward.columns()

    def fn(prompts: list[Any], completions: list[Any], completion_ids: list[list[int]] | None = None,
           **kwargs: Any) -> list[float | None]:
        columns = {c: kwargs[c] for c in names}
        return reward.score([text_of(c) for c in completions], columns, completion_ids or [[] for _ in completions],
                            prompts)

    return fn

"""Strategy and task registries.

Built-in strategies, tasks and rewards are declared as entry points (groups
`adapters_sft.strategies`, `adapters_sft.tasks` and `adapters_sft.rewards`) in our own pyproject.toml, exactly as a third-party package declares
its own, so a plugin needs no change to core. Entry points are loaded lazily, on the first
lookup. Set `ADAPTERS_SFT_DISABLE_PLUGINS=1` to load only this package's own.
"""
from __future__ import annotations

import os
from importlib import metadata
from typing import TYPE_CHECKING, Any

from .errors import UserError, did_you_mean

if TYPE_CHECKING:
    from .strategies.base import Strategy
    from .tasks.base import Task

GROUP = "adapters_sft.strategies"
TASK_GROUP = "adapters_sft.tasks"
REWARD_GROUP = "adapters_sft.rewards"
_DIST = "adapters-sft"


class _Registry:
    """Classes by their `name`, filled from one entry-point group on first use."""

    def __init__(self, group: str, kind: str, plural: str) -> None:
        self.group, self.kind, self.plural = group, kind, plural
        self.classes: dict[str, type] = {}
        self.loaded = False

    def register(self, cls: type) -> type:
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise ValueError(f"{cls.__qualname__} has no 'name' string attribute")
        if name in self.classes and self.classes[name] is not cls:
            raise ValueError(f"{self.kind} '{name}' is already registered by "
                             f"{self.classes[name].__module__}; pick another name")
        self.classes[name] = cls
        return cls

    def load(self) -> None:
        if self.loaded:
            return
        self.loaded = True
        only_ours = os.environ.get("ADAPTERS_SFT_DISABLE_PLUGINS", "") not in ("", "0")
        for ep in metadata.entry_points(group=self.group):
            dist = ep.dist.name if ep.dist else "?"
            if only_ours and dist.replace("_", "-") != _DIST:
                continue
            # A broken plugin must not take every verb down with a traceback: say which package.
            fix = f"fix or uninstall '{dist}', or set ADAPTERS_SFT_DISABLE_PLUGINS=1"
            try:
                cls = ep.load()
            except Exception as exc:  # noqa: BLE001 - any import failure of foreign code
                raise UserError(f"{self.kind} plugin '{ep.name}' from package '{dist}' failed to load "
                                f"({type(exc).__name__}: {exc}); {fix}") from None
            if ep.name != getattr(cls, "name", None):
                raise UserError(f"{self.kind} plugin '{ep.name}' from package '{dist}' names its "
                                f"{self.kind} '{getattr(cls, 'name', None)}'; the two must match; {fix}")
            try:
                self.register(cls)
            except ValueError as exc:
                raise UserError(f"{self.kind} plugin from package '{dist}': {exc}; {fix}") from None

    def names(self) -> list[str]:
        self.load()
        return sorted(self.classes)

    def get(self, name: str, key: str) -> Any:
        self.load()
        if name not in self.classes:
            known = ", ".join(sorted(self.classes)) or "none installed"
            raise UserError(f"{key}: unknown {self.kind} '{name}'{did_you_mean(name, self.classes)}; "
                            f"known {self.plural}: {known}")
        return self.classes[name]


_strategies = _Registry(GROUP, "strategy", "strategies")
_tasks = _Registry(TASK_GROUP, "task", "tasks")
_rewards = _Registry(REWARD_GROUP, "reward", "rewards")


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Add a strategy class; refuses a name that is already taken. Usable as a decorator."""
    return _strategies.register(cls)


def strategy_names() -> list[str]:
    return _strategies.names()


def get_strategy(name: str, key: str = "strategy.name") -> type[Strategy]:
    """The strategy class for `name`; an unknown name is a UserError listing the known ones."""
    return _strategies.get(name, key)


def register_task(cls: type[Task]) -> type[Task]:
    """Add a task class; refuses a name that is already taken. Usable as a decorator."""
    return _tasks.register(cls)


def task_names() -> list[str]:
    return _tasks.names()


def get_task(name: str, key: str = "task") -> Task:
    """The task for `name` (an instance; tasks hold no state); unknown names are a UserError."""
    return _tasks.get(name, key)()


def register_reward(cls: type) -> type:
    """Add a reward class (rewards/base.Reward); refuses a name that is already taken."""
    return _rewards.register(cls)


def reward_names() -> list[str]:
    return _rewards.names()


def get_reward(name: str, key: str = "rewards") -> type:
    """The reward class for `name`; an unknown name is a UserError listing the known ones."""
    return _rewards.get(name, key)

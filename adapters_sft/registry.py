"""Strategy registry.

Built-in strategies are declared as entry points (group `adapters_sft.strategies`) in our
own pyproject.toml, exactly as a third-party package declares its own, so a plugin needs no
change to core. Entry points are loaded lazily, on the first lookup. Set
`ADAPTERS_SFT_DISABLE_PLUGINS=1` to load only this package's own strategies.
"""
from __future__ import annotations

import os
from importlib import metadata
from typing import TYPE_CHECKING

from .errors import UserError, did_you_mean

if TYPE_CHECKING:
    from .strategies.base import Strategy

GROUP = "adapters_sft.strategies"
_DIST = "adapters-sft"
_registry: dict[str, type[Strategy]] = {}
_loaded = False


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Add a strategy class; refuses a name that is already taken. Usable as a decorator."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"{cls.__qualname__} has no 'name' string attribute")
    if name in _registry and _registry[name] is not cls:
        raise ValueError(f"strategy '{name}' is already registered by "
                         f"{_registry[name].__module__}; pick another name")
    _registry[name] = cls
    return cls


def _load_entry_points() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    only_ours = os.environ.get("ADAPTERS_SFT_DISABLE_PLUGINS", "") not in ("", "0")
    for ep in metadata.entry_points(group=GROUP):
        dist = ep.dist.name if ep.dist else "?"
        if only_ours and dist.replace("_", "-") != _DIST:
            continue
        # A broken plugin must not take every verb down with a traceback: say which package.
        fix = f"fix or uninstall '{dist}', or set ADAPTERS_SFT_DISABLE_PLUGINS=1"
        try:
            cls = ep.load()
        except Exception as exc:  # noqa: BLE001 - any import failure of foreign code
            raise UserError(f"strategy plugin '{ep.name}' from package '{dist}' failed to load "
                            f"({type(exc).__name__}: {exc}); {fix}") from None
        if ep.name != getattr(cls, "name", None):
            raise UserError(f"strategy plugin '{ep.name}' from package '{dist}' names its "
                            f"strategy '{getattr(cls, 'name', None)}'; the two must match; {fix}")
        try:
            register_strategy(cls)
        except ValueError as exc:
            raise UserError(f"strategy plugin from package '{dist}': {exc}; {fix}") from None


def strategy_names() -> list[str]:
    _load_entry_points()
    return sorted(_registry)


def get_strategy(name: str, key: str = "strategy.name") -> type[Strategy]:
    """The strategy class for `name`; an unknown name is a UserError listing the known ones."""
    _load_entry_points()
    if name not in _registry:
        known = ", ".join(sorted(_registry)) or "none installed"
        raise UserError(f"{key}: unknown strategy '{name}'{did_you_mean(name, _registry)}; "
                        f"known strategies: {known}")
    return _registry[name]

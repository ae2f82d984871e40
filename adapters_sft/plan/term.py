"""One line of a plan: a named amount of memory and what it is. Its own module so the plan's
parts (sharded.py) use it without importing the plan that uses them."""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class Term:
    name: str
    bytes: int
    note: str

"""`adapters-sft ls`: shipped recipes, registered strategies, tasks and rewards, built-in model aliases."""
from __future__ import annotations

import argparse
import dataclasses

from ..models import builtin_aliases
from ..recipe import recipe_names, recipes_root
from ..registry import get_reward, get_strategy, get_task, reward_names, strategy_names, task_names


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ls", help="list recipes, strategies, tasks, rewards and model aliases")
    p.set_defaults(run=run)


def description(name: str) -> str:
    """A shipped recipe's description: its header comment up to the `# Run:` line, whole (a
    description may take several lines; cutting at the first would end mid-sentence)."""
    lines = []
    for line in (recipes_root() / f"{name}.yaml").read_text(encoding="utf-8").splitlines():
        text = line.lstrip("# ").strip()
        if not line.startswith("#") or text.lower().startswith("run:"):
            break
        lines.append(text)
    return " ".join(lines)


def run(args: argparse.Namespace) -> int:
    names = recipe_names()
    width = max(map(len, [*names, *builtin_aliases()]), default=10) + 2
    print("Recipes (adapters-sft show NAME; adapters-sft train NAME):")
    for name in names:
        print(f"  {name:<{width}}{description(name)}")
    print("\nStrategies:")
    for name in strategy_names():
        print(f"  {name:<{width}}{get_strategy(name).summary}")
    print("\nTasks (recipe key task:):")
    for name in task_names():
        task = get_task(name)
        note = " [experimental: TRL keeps its trainer in trl.experimental]" if task.experimental else ""
        print(f"  {name:<{width}}{task.summary}{note}")
    print("\nRewards (task grpo, recipe key rewards:; or your own, FILE.py:FUNCTION):")
    for name in reward_names():
        cls = get_reward(name)
        keys = ", ".join(f.name for f in dataclasses.fields(cls.Options))
        print(f"  {name:<{width}}{cls.summary}" + (f" (keys: {keys})" if keys else ""))
    print("\nModel aliases:")
    for alias, what in builtin_aliases().items():
        print(f"  {alias:<{width}}{what}")
    return 0

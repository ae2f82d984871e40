"""Generate the bundled `date-pairs` preference dataset (task dpo): the `dates` prompts, each
with the right ISO 8601 answer as `chosen` and a realistic wrong one as `rejected`.

    python -m adapters_sft.datasets.make_date_pairs   # rewrites date-pairs/train.jsonl, eval.jsonl

The wrong answers are the mistakes a small model makes on this task: month and day swapped,
the date echoed as written, US or European slashes, a year or a day off by one. A preference
is checkable by a rule (the chosen answer is the only correct date), so a greedy answer can
be scored as right or wrong before and after tuning. Seeded; dates never repeat across rows
or splits, and none is a date of the `dates` dataset.
"""
from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

from .make_dates import PROMPT, written


def wrong(d: dt.date, shown: str, rng: random.Random) -> str:
    """A plausible wrong answer for date `d` written as `shown`."""
    kinds = ["echo", "us", "eu", "year", "day"] + (["swap"] * 3 if d.day <= 12 and d.day != d.month else [])
    kind = rng.choice(kinds)
    if kind == "swap":
        return f"{d.year}-{d.day:02d}-{d.month:02d}"
    if kind == "echo":
        return shown
    if kind == "us":
        return f"{d.month:02d}/{d.day:02d}/{d.year}"
    if kind == "eu":
        return f"{d.day:02d}/{d.month:02d}/{d.year}"
    if kind == "year":
        return d.replace(year=d.year + rng.choice((-1, 1))).isoformat()
    return (d + dt.timedelta(days=rng.choice((-1, 1)))).isoformat()


def pairs(n: int, rng: random.Random, taken: set[dt.date]) -> list[dict]:
    out = []
    while len(out) < n:
        d = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(365 * 80))
        if d in taken or (d.month == 2 and d.day == 29):  # a leap day has no year-off answer
            continue
        taken.add(d)
        shown = written(d, rng.randrange(6))
        out.append({"prompt": [{"role": "user", "content": PROMPT.format(date=shown)}],
                    "chosen": [{"role": "assistant", "content": d.isoformat()}],
                    "rejected": [{"role": "assistant", "content": wrong(d, shown, rng)}]})
    return out


def main() -> None:
    here = Path(__file__).parent
    taken = {dt.date.fromisoformat(json.loads(line)["messages"][-1]["content"])
             for split in ("train", "eval") for line in open(here / "dates" / f"{split}.jsonl", encoding="utf-8")}
    rng = random.Random(20261123)
    (here / "date-pairs").mkdir(exist_ok=True)
    for split, n in (("train", 320), ("eval", 60)):
        with open(here / "date-pairs" / f"{split}.jsonl", "w", encoding="utf-8") as f:
            for row in pairs(n, rng, taken):
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

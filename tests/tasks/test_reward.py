"""task: reward on a tiny model: TRL's RewardTrainer trains a one-output score head on the
preference pairs, held-out pairwise accuracy rises, every strategy trains it, `eval` scores a
finished run the same way, and a finished reward run scores a grpo run's answers
(`{name: run, path: RUN}`), ranking the chosen answers above the rejected."""
from __future__ import annotations

import json

import pytest

from adapters_sft.cli.main import main
from adapters_sft.errors import UserError
from adapters_sft.trainer import train


@pytest.fixture
def reward_recipe(dpo_recipe):
    def make(strategy: str, *overrides: str, **opts):
        return dpo_recipe(strategy, "eval.metric=preference", *overrides, task="reward", **opts)
    return make


@pytest.fixture(scope="module")
def trained_rm(tmp_path_factory, tiny_model_dir, pref_data):
    from adapters_sft.recipe import load_recipe

    root = tmp_path_factory.mktemp("rm")
    body = {"model": str(tiny_model_dir), "task": "reward", "strategy": {"name": "lora", "r": 4, "alpha": 8, "dropout": 0.0},
            "data": {"train": str(pref_data["train"]), "eval": str(pref_data["eval"]), "max_length": 64},
            "training": {"max_steps": 12, "per_device_train_batch_size": 4, "learning_rate": 1e-2, "logging_steps": 4,
                         "per_device_eval_batch_size": 3},  # 8 pairs: a short last batch
            "eval": {"metric": "preference", "before_training": True}, "output_dir": str(root / "rm")}
    (root / "rm.yaml").write_text(json.dumps(body))
    return train(load_recipe(str(root / "rm.yaml")), echo=lambda line: None)


def test_held_out_pairwise_accuracy_rises(trained_rm):
    before, after = trained_rm.scores["before"], trained_rm.scores["after"]
    assert after["accuracy"] >= 0.75 and after["accuracy"] > before["accuracy"], (before, after)
    assert after["margin"] > before["margin"] and after["total"] == 8
    saved = json.loads((trained_rm.run_dir / "eval.json").read_text())
    assert saved["after"]["accuracy"] == after["accuracy"]
    # how it read its pairs, for the grpo runs it scores (rewards/run.py)
    assert json.loads((trained_rm.run_dir / "scored_as.json").read_text()) == {"chat": True}


def test_held_out_pairs_all_longer_than_max_length_is_one_line(reward_recipe, tmp_path):
    from tests.tasks.conftest import pair

    long = [{**pair(i), "chosen": [{"role": "assistant", "content": " ".join(["what"] * 80)}]} for i in range(4)]
    (tmp_path / "long.jsonl").write_text("".join(json.dumps(r) + "\n" for r in long))
    recipe = reward_recipe("lora", f"data.eval={tmp_path / 'long.jsonl'}", "data.max_length=64", r=4, alpha=8,
                           dropout=0.0)
    with pytest.raises(UserError, match=r"data.max_length: every held-out pair is longer than 64 tokens, so none "
                                        r"can be scored; raise data.max_length"):
        train(recipe, echo=lambda line: None)


@pytest.mark.parametrize("strategy", ["full", "head-only", "freeze", "adapter", "ia3"])
def test_every_kind_of_strategy_trains_a_reward_model(strategy, reward_recipe):
    result = train(reward_recipe(strategy, "training.max_steps=2"), echo=lambda line: None)
    assert {"accuracy", "margin", "loss"} <= set(result.scores["after"])


def test_a_reward_run_scores_chosen_answers_above_rejected(trained_rm, pref_data):
    from adapters_sft.rewards.run import RunOptions, RunReward

    reward = RunReward(RunOptions(path=str(trained_rm.run_dir)))
    reward.check("rewards[0]")
    pairs = [json.loads(line) for line in pref_data["eval"].read_text().splitlines()]
    prompts = [p["prompt"] for p in pairs]
    chosen = reward.score([p["chosen"][0]["content"] for p in pairs], {}, [], prompts)
    rejected = reward.score([p["rejected"][0]["content"] for p in pairs], {}, [], prompts)
    after = trained_rm.scores["after"]  # counted pair by pair, not a mean of unequal batches' means
    assert sum(c > r for c, r in zip(chosen, rejected)) == after["correct"] and after["total"] == len(pairs) == 8
    assert after["accuracy"] == after["correct"] / 8


def test_a_grpo_recipe_trains_with_a_reward_run(trained_rm, tiny_model_dir, tmp_path, pref_data):
    from adapters_sft.recipe import load_recipe

    rows = [{"prompt": json.loads(line)["prompt"]} for line in pref_data["train"].read_text().splitlines()]
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    body = {"model": str(tiny_model_dir), "task": "grpo", "strategy": {"name": "lora", "r": 4, "alpha": 8},
            "data": {"train": str(tmp_path / "prompts.jsonl")},
            "rewards": [{"name": "run", "path": str(trained_rm.run_dir)}],
            "training": {"max_steps": 1, "per_device_train_batch_size": 4, "num_generations": 4,
                         "max_completion_length": 4, "logging_steps": 1},
            "output_dir": str(tmp_path / "g")}
    (tmp_path / "g.yaml").write_text(json.dumps(body))
    result = train(load_recipe(str(tmp_path / "g.yaml")), echo=lambda line: None)
    logged = json.loads((result.run_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert "rewards/run/mean" in logged and logged["rewards/run/std"] > 0


def test_a_reward_path_that_is_not_a_reward_run_is_one_line(tiny_recipe, tiny_model_dir, tmp_path, capsys):
    sft = train(tiny_recipe("lora", "training.max_steps=1", f"output_dir={tmp_path / 'sft'}", r=4, alpha=8),
                echo=lambda line: None).run_dir
    (tmp_path / "prompts.jsonl").write_text(json.dumps({"prompt": "what is hi"}) + "\n")
    for path, words in ((sft, "rewards[0].path: " + str(sft) + " is a sft run; a reward needs a run of task: reward"),
                        (tmp_path / "nowhere", "rewards[0].path: " + str(tmp_path / "nowhere") + ": no such run")):
        recipe = tmp_path / "g.yaml"
        recipe.write_text(json.dumps({"model": str(tiny_model_dir), "task": "grpo", "strategy": "lora",
                                      "data": {"train": str(tmp_path / "prompts.jsonl")},
                                      "rewards": [{"name": "run", "path": str(path)}], "output_dir": str(tmp_path / "g")}))
        assert main(["train", str(recipe)]) == 2
        err = [x for x in capsys.readouterr().err.splitlines() if "error:" in x]
        assert len(err) == 1 and words in err[0], err
        assert not (tmp_path / "g").exists()


def test_reward_needs_pairs(tiny_recipe):
    from adapters_sft.preflight import rules

    with pytest.raises(UserError, match=r"task: reward trains on preference pairs .* data.train holds messages"):
        rules(tiny_recipe("lora", "task=reward"), full=False)

"""task: dpo on a tiny model: the DPO loss starts at ln 2 with zero rewards (the policy is its
reference), a few steps raise held-out reward accuracy, every strategy trains or is refused in
one line, and a DPO run is read back, scored by `eval` and merged like an SFT run."""
from __future__ import annotations

import json
import math

import pytest

from adapters_sft.cli.main import main
from adapters_sft.trainer import build_trainer, train


def test_dpo_loss_starts_at_ln2_with_zero_rewards(dpo_recipe, tmp_path):
    trainer, _, _ = build_trainer(dpo_recipe("lora", r=4, alpha=8, dropout=0.0), tmp_path / "w")
    metrics = trainer.evaluate()
    assert metrics["eval_loss"] == pytest.approx(math.log(2), abs=1e-5)
    assert metrics["eval_rewards/chosen"] == metrics["eval_rewards/rejected"] == 0.0
    assert metrics["eval_rewards/accuracies"] == 0.0


def test_a_few_steps_raise_held_out_reward_accuracy(dpo_recipe):
    recipe = dpo_recipe("lora", "training.max_steps=12", "training.learning_rate=5e-2",
                        "eval.metric=preference", "eval.before_training=true", r=4, alpha=8, dropout=0.0)
    result = train(recipe, echo=lambda line: None)
    before, after = result.scores["before"], result.scores["after"]
    assert before["reward_accuracy"] == 0.0 and before["loss"] == pytest.approx(math.log(2), abs=1e-5)
    assert after["reward_accuracy"] >= 0.75 and after["reward_margin"] > 0 and after["loss"] < math.log(2)
    saved = json.loads((result.run_dir / "eval.json").read_text())
    assert saved["after"]["reward_accuracy"] == after["reward_accuracy"]


def test_dpo_run_reads_back_evaluates_and_merges(dpo_recipe, tmp_path, capsys):
    recipe = dpo_recipe("lora", "training.max_steps=6", "training.learning_rate=5e-2", "eval.metric=preference",
                        r=4, alpha=8, dropout=0.0)
    result = train(recipe, echo=lambda line: None)
    run = result.run_dir
    capsys.readouterr()
    assert main(["eval", str(run)]) == 0
    printed = capsys.readouterr().out
    assert "reward accuracy" in printed
    scored = json.loads((run / "evals" / "heldout" / "eval.json").read_text())
    after = result.scores["after"]  # eval scores the run against the reference it trained against
    assert after["reward_margin"] > 0.1
    assert scored["reward_accuracy"] == after["reward_accuracy"]
    assert scored["reward_margin"] == pytest.approx(after["reward_margin"], rel=1e-3)
    assert main(["merge", str(run), "--out", str(tmp_path / "merged")]) == 0


def test_preference_data_under_task_sft_is_refused_in_one_line(tiny_recipe, pref_data):
    from adapters_sft.errors import UserError

    recipe = tiny_recipe("lora", f"data.train={pref_data['train']}", f"data.eval={pref_data['eval']}")
    with pytest.raises(UserError, match=r"data.train: holds preference rows .* set task=dpo"):
        train(recipe, echo=lambda line: None)


@pytest.mark.parametrize("strategy, opts", [("lora", {"r": 4, "alpha": 8, "dropout": 0.0}), ("full", {})])
def test_init_from_an_sft_run_makes_that_run_the_reference(strategy, opts, tiny_recipe, dpo_recipe, tmp_path):
    import torch

    from adapters_sft.run_reader import load_run

    sft = train(tiny_recipe(strategy, "training.max_steps=4", "training.learning_rate=5e-2",
                            f"output_dir={tmp_path / 'sft'}", **opts), echo=lambda line: None).run_dir
    trainer, _, _ = build_trainer(dpo_recipe(strategy, f"init_from={sft}", **opts), tmp_path / "w")
    ids = torch.tensor([[1, 4, 10, 11, 2, 8, 1, 6, 12, 13]])
    as_trained, _, _ = load_run(sft)
    with torch.no_grad():  # the policy starts as the SFT model, not the base
        assert torch.allclose(trainer.model.eval()(input_ids=ids).logits, as_trained(input_ids=ids).logits,
                              atol=1e-5)
    metrics = trainer.evaluate()  # and so does the reference: rewards 0, loss ln 2
    assert metrics["eval_loss"] == pytest.approx(math.log(2), abs=1e-5)
    assert metrics["eval_rewards/chosen"] == metrics["eval_rewards/rejected"] == 0.0


def test_init_from_a_run_of_another_strategy_is_refused_in_one_line(tiny_recipe, dpo_recipe, tmp_path):
    from adapters_sft.errors import UserError
    from adapters_sft.preflight import preflight

    sft = train(tiny_recipe("lora", "training.max_steps=1", f"output_dir={tmp_path / 'sft'}"),
                echo=lambda line: None).run_dir
    with pytest.raises(UserError, match=r"init_from: .* is a 'lora' run and this recipe's strategy is "
                                        r"'ia3'; use strategy=lora"):
        preflight(dpo_recipe("ia3", f"init_from={sft}"), echo=lambda line: None)


@pytest.mark.parametrize("strategy, opts", [("lora", {"r": 4, "alpha": 8, "dropout": 0.0}), ("full", {})])
def test_eval_of_an_init_from_run_scores_against_that_run(strategy, opts, tiny_recipe, dpo_recipe, tmp_path,
                                                          capsys):
    sft = train(tiny_recipe(strategy, "training.max_steps=4", "training.learning_rate=5e-2",
                            f"output_dir={tmp_path / 'sft'}", **opts), echo=lambda line: None).run_dir
    result = train(dpo_recipe(strategy, f"init_from={sft}", "training.max_steps=4", "eval.metric=preference",
                              "training.learning_rate=1e-2", f"output_dir={tmp_path / 'dpo'}", **opts),
                   echo=lambda line: None)
    assert main(["eval", str(result.run_dir)]) == 0
    scored = json.loads((result.run_dir / "evals" / "heldout" / "eval.json").read_text())
    after = result.scores["after"]
    assert after["reward_margin"] != 0
    assert scored["reward_margin"] == pytest.approx(after["reward_margin"], rel=1e-3, abs=1e-5)


def test_init_from_a_folder_that_is_no_run_names_the_key(dpo_recipe, tmp_path):
    from adapters_sft.errors import UserError
    from adapters_sft.preflight import preflight

    (tmp_path / "nothing").mkdir()
    with pytest.raises(UserError, match=r"init_from: .*nothing: not a finished run: it holds no recipe.yaml"):
        preflight(dpo_recipe("lora", f"init_from={tmp_path / 'nothing'}"), echo=lambda line: None)
    with pytest.raises(UserError, match=r"init_from: .*nowhere: no such run directory"):
        preflight(dpo_recipe("lora", f"init_from={tmp_path / 'nowhere'}"), echo=lambda line: None)


def test_what_a_run_from_an_sft_run_cost_is_measured_against_that_run(tiny_recipe, dpo_recipe, tmp_path):
    """eval.general's reference is what the run trained against: the init_from run, in
    training and in `eval` (where it is rebuilt from the base with that run restored on it)."""
    from adapters_sft.evaluation import general_reference
    from adapters_sft.models import load_model, load_tokenizer
    from adapters_sft.run_reader import load_run, open_run
    from adapters_sft.scores import general
    from adapters_sft.scores.generative import generate_ids

    prompts = tmp_path / "general.txt"
    prompts.write_text("hi what is the date\nred blue green cat\na b c\nyes or no\nconvert one two\n")
    opts = {"r": 4, "alpha": 8, "dropout": 0.0}
    sft = train(tiny_recipe("lora", "training.max_steps=4", "training.learning_rate=5e-2",
                            f"output_dir={tmp_path / 'sft'}", **opts), echo=lambda line: None).run_dir
    dpo = train(dpo_recipe("lora", f"init_from={sft}", "eval.metric=preference", f"eval.general={prompts}",
                           f"output_dir={tmp_path / 'dpo'}", **opts), echo=lambda line: None).run_dir
    model, tok, recipe = load_run(sft)
    chats = general.as_prompts(tok, prompts.read_text().split("\n")[:5])
    theirs = generate_ids(model, tok, chats, general.ANSWER_TOKENS, 4)
    base = generate_ids(load_model(recipe.model, {}), load_tokenizer(recipe.model), chats, general.ANSWER_TOKENS, 4)
    assert theirs != base  # the SFT run answers differently from the base, so the test can tell
    assert general.load(dpo / "general.safetensors").answers == theirs
    other = tmp_path / "other.txt"
    other.write_text("\n".join(prompts.read_text().split("\n")[:5][::-1]) + "\n")  # not the stored prompts
    rebuilt = general_reference(open_run(dpo), str(other), "--general: ", 4)
    assert rebuilt.answers == theirs[::-1]

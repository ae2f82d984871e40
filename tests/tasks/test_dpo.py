"""task: dpo on a tiny model: the DPO loss starts at ln 2 with zero rewards (the policy is its
reference), a few steps raise held-out reward accuracy, every strategy trains or is refused in
one line, and a DPO run is read back, scored by `eval` and merged like an SFT run."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from adapters_sft.cli.main import main
from adapters_sft.registry import strategy_names
from adapters_sft.trainer import build_trainer, train
from tests.conftest import WORDS


def pair(i: int) -> dict:
    q, a = WORDS[i % 12], WORDS[(i * 5 + 3) % len(WORDS)]
    return {"prompt": [{"role": "user", "content": f"what is {q}"}],
            "chosen": [{"role": "assistant", "content": f"{a} {q}"}],
            "rejected": [{"role": "assistant", "content": f"{q} {q} {q}"}]}


@pytest.fixture(scope="session")
def pref_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pref")
    out = {}
    for split, start, n in (("train", 0, 32), ("eval", 100, 8)):
        out[split] = root / f"{split}.jsonl"
        out[split].write_text("".join(json.dumps(pair(start + i)) + "\n" for i in range(n)))
    return out


@pytest.fixture
def dpo_recipe(tiny_recipe, pref_data):
    def make(strategy: str, *overrides: str, **opts):
        return tiny_recipe(strategy, "task=dpo", f"data.train={pref_data['train']}",
                           f"data.eval={pref_data['eval']}", *overrides, **opts)
    return make


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


@pytest.mark.parametrize("strategy", sorted(set(strategy_names()) & {"head-only", "full", "freeze", "lora",
                                                                      "qlora", "ia3", "adapter"}))
def test_every_strategy_trains_with_dpo(strategy, dpo_recipe, tmp_path):
    trainer, _, _ = build_trainer(dpo_recipe(strategy, "training.max_steps=2"), tmp_path / "w")
    out = trainer.train()
    assert math.isfinite(out.training_loss)


def test_dpo_run_reads_back_evaluates_and_merges(dpo_recipe, tmp_path, capsys):
    recipe = dpo_recipe("lora", "training.max_steps=6", "training.learning_rate=5e-2", r=4, alpha=8, dropout=0.0)
    run = train(recipe, echo=lambda line: None).run_dir
    capsys.readouterr()
    assert main(["eval", str(run)]) == 0
    printed = capsys.readouterr().out
    assert "reward accuracy" in printed and (run / "eval" / "eval" / "eval.json").is_file()
    assert main(["merge", str(run), "--out", str(tmp_path / "merged")]) == 0


def test_preference_data_under_task_sft_is_refused_in_one_line(tiny_recipe, pref_data):
    from adapters_sft.errors import UserError

    recipe = tiny_recipe("lora", f"data.train={pref_data['train']}", f"data.eval={pref_data['eval']}")
    with pytest.raises(UserError, match=r"data.train: holds preference rows .* set task=dpo"):
        train(recipe, echo=lambda line: None)


@pytest.mark.parametrize("strategy, opts", [("lora", {"r": 4, "alpha": 8, "dropout": 0.0}), ("full", {})])
def test_init_from_an_sft_run_makes_that_run_the_reference(strategy, opts, tiny_recipe, dpo_recipe, tmp_path):
    import torch

    from adapters_sft.runs import load_run

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

"""AdaLoRA (strategies/adalora.py): the rank schedule gets the trainer's own step count, the
budget really moves while training (PEFT's update_and_allocate runs every step), the saved
adapter with its pruned ranks reloads to the trained model, and a schedule that leaves no
budgeting step is one line before anything loads."""
from __future__ import annotations

import json

import torch

from adapters_sft.cli.main import main
from adapters_sft.run_reader import load_run
from adapters_sft.trainer import train

SCHEDULE = {"init_r": 4, "target_r": 1, "tinit": 1, "tfinal": 2, "deltaT": 1}


def _ids() -> torch.Tensor:
    return torch.tensor([[1, 4, 10, 11, 2, 8, 1, 6, 12, 13]])


def test_the_budget_moves_and_the_pruned_adapter_reloads_to_the_trained_model(tiny_recipe):
    result = train(tiny_recipe("adalora", "training.max_steps=6", **SCHEDULE), echo=lambda *_: None)
    config = json.loads((result.run_dir / "adapter" / "adapter_config.json").read_text())
    assert config["total_step"] == 6  # the trainer's count, not a placeholder
    kept = [sum(mask) for mask in config["rank_pattern"].values()]
    assert len(kept) == 4 and sum(kept) < 4 * SCHEDULE["init_r"]  # ranks were pruned to the budget
    trained = result.trainer.model.eval()
    with torch.no_grad():
        expected = trained(input_ids=_ids()).logits
    reloaded, _, _ = load_run(result.run_dir)
    with torch.no_grad():
        got = reloaded(input_ids=_ids()).logits
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_epochs_without_max_steps_take_the_trainers_count(tiny_recipe):
    # 32 rows, batch 4: 8 optimizer steps in one epoch, counted by the Trainer itself
    recipe = tiny_recipe("adalora", "training.max_steps=-1", "training.num_train_epochs=1",
                         tinit=1, tfinal=2)
    result = train(recipe, echo=lambda *_: None)
    config = json.loads((result.run_dir / "adapter" / "adapter_config.json").read_text())
    assert config["total_step"] == result.trainer.state.max_steps == 8


def test_a_schedule_with_no_budgeting_step_is_refused_before_anything_loads(tmp_path, capsys,
                                                                          tiny_recipe):
    recipe = tiny_recipe("adalora", "training.max_steps=3", tinit=2, tfinal=1)
    out = tmp_path / "refused"
    assert main(["check", recipe.source, f"output_dir={out}", "training.max_steps=3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "strategy.tinit + strategy.tfinal" in err[0] and "3 optimizer steps" in err[0]
    assert not out.exists()

"""BAdam on the full strategy (strategy.badam_switch_every): one block trains at a time in
BAdam's order, the embeddings and head stay as they were, and bad settings are one line."""
from __future__ import annotations

import sys

import pytest
import torch

from adapters_sft.cli.main import main
from adapters_sft.trainer import build_trainer


def _block(name: str) -> int | None:
    parts = name.split(".")
    return int(parts[2]) if parts[1] == "layers" else None


@pytest.mark.parametrize("mode, first", [("descending", 1), ("ascending", 0)])
def test_one_block_at_a_time_in_badams_order(mode, first, tiny_recipe, tmp_path):
    from badam import BlockOptimizer
    from transformers import TrainerCallback

    recipe = tiny_recipe("full", "training.max_steps=6", badam_switch_every=2, badam_switch_mode=mode)
    trainer, _, _ = build_trainer(recipe, tmp_path / "w")
    model = trainer.model
    assert {_block(n) for n, p in model.named_parameters() if p.requires_grad} == {first}  # the plan's
    snapshots = []

    class Watch(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            snapshots.append({n: p.detach().clone() for n, p in model.named_parameters()})

    trainer.add_callback(Watch())
    trainer.train()
    snapshots.append({n: p.detach().clone() for n, p in model.named_parameters()})
    assert isinstance(getattr(trainer.optimizer, "optimizer", trainer.optimizer), BlockOptimizer)
    moved = [{_block(n) for n, old in snapshots[s].items() if not torch.equal(old, snapshots[s + 1][n])}
             for s in range(6)]
    # BAdam switches after the optimizer steps whose count g has (g + 1) % 2 == 0: 1, 3, 5
    other = 1 - first
    assert moved == [{first}, {other}, {other}, {first}, {first}, {other}], moved


def test_bad_settings_are_one_line(tiny_recipe, tmp_path, monkeypatch, capsys):
    tiny_recipe("full")
    recipe = str(tmp_path / "full.yaml")
    assert main(["validate", recipe, "strategy.badam_switch_every=2", "strategy.badam_switch_mode=sideways"]) == 2
    assert "strategy.badam_switch_mode: 'sideways' is not one of descending, ascending, random" in capsys.readouterr().err
    assert main(["validate", recipe, "strategy.badam_switch_every=2", "strategy.unfreeze_every=2"]) == 2
    assert "remove strategy.unfreeze_every" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "badam", None)
    assert main(["validate", recipe, "strategy.badam_switch_every=2"]) == 2
    assert capsys.readouterr().err.strip().endswith("pip install 'adapters-sft[badam]'")
    monkeypatch.delitem(sys.modules, "badam")
    assert main(["validate", recipe, "strategy.badam_switch_every=2", "training.layer_lr_decay=0.9"]) == 2
    assert capsys.readouterr().err.strip().endswith(
        "strategy.badam_switch_every: builds its own parameter groups, so training.layer_lr_decay "
        "cannot apply; remove one of them")
    assert main(["validate", recipe, "strategy.badam_switch_every=2", "training.optim=galore_adamw"]) == 2
    assert capsys.readouterr().err.strip().endswith(
        "training.optim: galore_adamw builds its own parameter groups, so strategy.badam_switch_every "
        "cannot apply; remove one of them")

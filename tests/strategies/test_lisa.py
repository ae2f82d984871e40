"""lisa: K random blocks train at a time, redrawn every M steps; only they (and the embeddings
and top) hold gradients and AdamW moments; the plan counts that; a bad K is refused."""
from __future__ import annotations

import pytest
import torch

from adapters_sft.errors import UserError
from adapters_sft.strategies.lisa import LisaOptions, LisaStrategy, draw
from adapters_sft.trainer import build_trainer


def _block(name: str) -> int | None:
    parts = name.split(".")
    return int(parts[2]) if parts[1] == "layers" else None


def test_blocks_train_by_the_draw_and_only_they_hold_optimizer_state(tiny_recipe, tmp_path):
    from transformers import TrainerCallback

    recipe = tiny_recipe("lisa", "training.max_steps=8", "seed=3", active_blocks=1, switch_every=2)
    trainer, strategy, _ = build_trainer(recipe, tmp_path / "w")
    model = trainer.model
    names = {id(p): n for n, p in model.named_parameters()}
    snapshots, stated = [], []

    class Watch(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            snapshots.append({n: p.detach().clone() for n, p in model.named_parameters()})

        def on_step_end(self, args, state, control, optimizer=None, **kwargs):
            stated.append({_block(names[id(p)]) for p in optimizer.state if optimizer.state[p]})

    trainer.add_callback(Watch())
    trainer.train()
    snapshots.append({n: p.detach().clone() for n, p in model.named_parameters()})
    expected = [draw(2, 1, 3, step // 2) for step in range(8)]
    assert len({tuple(d) for d in expected}) == 2  # both blocks get drawn in these 4 stages
    assert strategy.resampler.draws == {s: expected[s] for s in range(8) if s == 0 or expected[s] != expected[s - 1]}
    for step in range(8):
        moved = {_block(n) for n, old in snapshots[step].items()
                 if not torch.equal(old, snapshots[step + 1][n])}
        assert moved == {None, *expected[step]}, (step, moved)  # the bottom and top always move
        assert stated[step] == {None, *expected[step]}, (step, stated[step])


def test_plan_counts_the_active_blocks_only(tiny_model_dir):
    from transformers import AutoConfig

    from adapters_sft.plan.static import static_terms

    config = AutoConfig.from_pretrained(tiny_model_dir)
    lisa = static_terms(config, LisaStrategy(LisaOptions(name="lisa", active_blocks=1)),
                        torch.float32, None, "adamw_torch")
    model = lisa.model
    block = sum(p.numel() for p in model.model.layers[0].parameters())
    assert lisa.trainable_numbers == model.num_parameters() - block  # of 2 blocks, 1 trains
    assert lisa.optimizer == 2 * 4 * lisa.trainable_numbers + 4 * sum(
        1 for n, p in model.named_parameters() if p.requires_grad)


def test_more_active_blocks_than_the_model_has_is_refused(tiny_recipe, tmp_path):
    with pytest.raises(UserError, match=r"strategy.active_blocks: 3, but the model has 2 transformer "
                                        r"blocks; use 2 or fewer, or strategy full"):
        build_trainer(tiny_recipe("lisa", active_blocks=3), tmp_path / "w")

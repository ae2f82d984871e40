"""Layer-wise learning rates and LoRA+ act through the optimizer's parameter groups: the
groups are inspected before and after real training steps."""
from __future__ import annotations

import re

import pytest
import torch

from adapters_sft.errors import UserError
from adapters_sft.trainer import build_trainer


def lr_of(optimizer) -> dict[int, float]:
    return {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}


def expected_depth(name: str) -> int:
    """Tiny Llama: norm/head on top (0), block 1 (1), block 0 (2), embeddings (3)."""
    m = re.search(r"layers\.(\d)\.", name)
    if m:
        return 2 - int(m.group(1))
    return 3 if "embed_tokens" in name else 0


def test_layer_lr_decay_gives_each_block_its_rate_and_training_keeps_the_ratios(tiny_recipe, tmp_path):
    trainer, _, _ = build_trainer(tiny_recipe("full", "training.layer_lr_decay=0.5",
                                              "training.weight_decay=0.1",
                                              "training.lr_scheduler_type=cosine_with_min_lr",
                                              "training.lr_scheduler_kwargs={min_lr_rate: 0.1}"),
                                  tmp_path / "w")
    params = dict(trainer.model.named_parameters())
    lrs = lr_of(trainer.optimizer)
    assert set(lrs) == {id(p) for p in params.values()}
    for name, p in params.items():
        assert lrs[id(p)] == pytest.approx(1e-2 * 0.5 ** expected_depth(name)), name
    decays = {id(p): g["weight_decay"] for g in trainer.optimizer.param_groups for p in g["params"]}
    assert decays[id(params["model.norm.weight"])] == 0.0
    assert decays[id(params["model.layers.0.mlp.up_proj.weight"])] == 0.1

    trainer.train()  # the scheduler scales every group alike, and every group was stepped
    live = lr_of(trainer.optimizer)
    top, bottom = params["model.norm.weight"], params["model.embed_tokens.weight"]
    assert live[id(bottom)] / live[id(top)] == pytest.approx(0.5 ** 3)
    assert all("exp_avg" in trainer.optimizer.state[p] for p in params.values())
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)  # the head's, logged


def test_layer_lr_decay_on_a_classifier_keeps_the_head_at_full_rate(cls_recipe, tmp_path):
    trainer, _, _ = build_trainer(cls_recipe("freeze", "training.layer_lr_decay=0.5",
                                             trainable_layers=2), tmp_path / "w")
    params = dict(trainer.model.named_parameters())
    lrs = lr_of(trainer.optimizer)
    assert lrs[id(params["classifier.weight"])] == pytest.approx(1e-2)
    assert lrs[id(params["bert.pooler.dense.weight"])] == pytest.approx(1e-2)
    assert lrs[id(params["bert.encoder.layer.2.output.dense.weight"])] == pytest.approx(5e-3)
    assert lrs[id(params["bert.encoder.layer.1.output.dense.weight"])] == pytest.approx(2.5e-3)
    assert id(params["bert.encoder.layer.0.output.dense.weight"]) not in lrs  # frozen


def test_without_our_knobs_the_trainer_keeps_its_own_optimizer(tiny_recipe, tmp_path):
    trainer, _, _ = build_trainer(tiny_recipe("full"), tmp_path / "w")
    assert trainer.optimizer is None


def test_loraplus_matches_pefts_own_grouping(tiny_recipe, tmp_path):
    from peft.optimizers import create_loraplus_optimizer

    trainer, _, _ = build_trainer(tiny_recipe("lora", r=4, alpha=8, loraplus_lr_ratio=16.0), tmp_path / "w")
    ours = lr_of(trainer.optimizer)
    theirs = lr_of(create_loraplus_optimizer(trainer.model, torch.optim.AdamW, lr=1e-2,
                                             loraplus_lr_ratio=16.0))
    lora = {id(p): n for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert lora and all(ours[i] == pytest.approx(theirs[i]) for i in lora)
    assert sorted({round(ours[i], 9) for i in lora}) == [0.01, 0.16]  # A at lr, B at 16 x lr


def test_bad_decay_is_named():
    from adapters_sft.recipe import load_recipe

    with pytest.raises(UserError, match=r"^command line: training\.layer_lr_decay: must be in \(0, 1\]"):
        load_recipe("smollm2-135m/full", ["training.layer_lr_decay=1.5"])  # before any training_args

"""GaLore and APOLLO through `training.optim` (transformers builds them from galore-torch and
apollo-torch): the full strategy trains with them on its linear weights; the targets default
to every linear layer; a missing package and a clash with our own groups are one line each."""
from __future__ import annotations

import importlib
import importlib.util
import math
import sys

import pytest
import torch

from adapters_sft.cli.main import main
from adapters_sft.errors import UserError
from adapters_sft.preflight import rules
from adapters_sft.trainer import build_trainer

OPTIMS = {"galore_adamw": ("galore_torch", "GaLoreAdamW"), "apollo_adamw": ("apollo_torch", "APOLLOAdamW")}


@pytest.mark.parametrize("optim", OPTIMS)
def test_full_training_with_a_low_rank_optimizer(optim, tiny_recipe, tmp_path):
    module, cls = OPTIMS[optim]
    recipe = tiny_recipe("full", f"training.optim={optim}", "training.optim_args=rank=4,update_proj_gap=2")
    trainer, _, _ = build_trainer(recipe, tmp_path / "w")
    assert trainer.args.optim_target_modules == "all-linear"  # our default
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    assert math.isfinite(trainer.train().training_loss)
    optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)
    assert type(optimizer) is getattr(importlib.import_module(module), cls)
    projected = next(g for g in optimizer.param_groups if "rank" in g)
    linear = {id(m.weight) for m in trainer.model.modules() if isinstance(m, torch.nn.Linear)}
    assert projected["rank"] == 4 and {id(p) for p in projected["params"]} == linear - \
        {id(trainer.model.get_output_embeddings().weight)}  # the tied head is the embedding
    # a projected weight's moments are rank-4, not its own shape; every parameter moved
    weight = projected["params"][0]
    state = optimizer.state[weight]
    assert "projector" in state and min(state["exp_avg"].shape) == 4 < min(weight.shape)
    assert all(not torch.equal(old, dict(trainer.model.named_parameters())[n]) for n, old in before.items())


def test_a_missing_package_names_the_extra(tiny_recipe, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "galore_torch", None)  # as if not installed
    tiny_recipe("full")  # writes full.yaml
    assert main(["validate", str(tmp_path / "full.yaml"), "training.optim=galore_adamw"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "adapters-sft: error: command line: training.optim: galore_adamw needs the galore-torch "
        "package; pip install 'adapters-sft[galore]'"]


@pytest.mark.parametrize("clash, key", [(("training.layer_lr_decay=0.9",), "training.layer_lr_decay"),
                                        (("strategy.unfreeze_every=2",), "strategy.unfreeze_every"),
                                        (("strategy.name=lisa",), "strategy lisa")])
def test_our_own_groups_are_refused_beside_it(clash, key, tiny_recipe):
    recipe = tiny_recipe("full", "training.optim=apollo_adamw", *clash)
    with pytest.raises(UserError, match=f"training.optim: apollo_adamw builds its own parameter groups, "
                                        f"so {key} cannot apply; remove one of them"):
        rules(recipe, full=False)

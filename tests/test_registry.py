"""The strategy registry: duplicates refused, helpful lookups, outside plugins via entry points."""
from __future__ import annotations

import textwrap

import pytest
import torch

from adapters_sft import registry
from adapters_sft.errors import UserError
from adapters_sft.strategies.base import Strategy
from adapters_sft.trainer import build_trainer
from tests.conftest import install_plugin

PLUGIN = textwrap.dedent('''
    """An outside strategy: trains only the RMSNorm weights."""
    import dataclasses
    from adapters_sft.strategies.base import Options, Prepared, Strategy, freeze_all, save_trainable, load_saved

    @dataclasses.dataclass
    class NormOnlyOptions(Options):
        pass

    class NormOnly(Strategy):
        name = "norm-only"
        Options = NormOnlyOptions
        summary = "test plugin"

        def prepare(self, model):
            freeze_all(model)
            for n, p in model.named_parameters():
                if "norm" in n:
                    p.requires_grad_(True)
            return Prepared(model)

        def save(self, model, out):
            save_trainable(model, out, {"strategy": self.name})

        def load_trained(self, base, out):
            load_saved(base, out)
            return base
''')


@pytest.fixture
def fresh_registry(monkeypatch):
    monkeypatch.setattr(registry._strategies, "classes", {})
    monkeypatch.setattr(registry._strategies, "loaded", False)


@pytest.fixture
def outside_plugin(tmp_path, monkeypatch, fresh_registry):
    """A separately 'installed' package: a module plus a dist-info with an entry point."""
    install_plugin(tmp_path, monkeypatch, "norm_only_plugin", PLUGIN, "adapters_sft.strategies",
                   "norm-only = norm_only_plugin:NormOnly")


def test_builtins_come_from_entry_points(fresh_registry):
    assert {"head-only", "full", "lora", "qlora", "adapter"} <= set(registry.strategy_names())


def test_outside_plugin_is_found_and_trains(outside_plugin, tiny_recipe, tmp_path):
    assert "norm-only" in registry.strategy_names()
    trainer, _, _ = build_trainer(tiny_recipe("norm-only"), tmp_path / "w")
    norms = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert norms and all("norm" in n for n in norms)
    trainer.train()
    params = dict(trainer.model.named_parameters())
    assert all(not torch.equal(v, params[n]) for n, v in norms.items())


def test_plugins_can_be_switched_off(outside_plugin, monkeypatch):
    monkeypatch.setenv("ADAPTERS_SFT_DISABLE_PLUGINS", "1")
    names = registry.strategy_names()
    assert "norm-only" not in names and "lora" in names


def test_duplicate_names_are_refused(fresh_registry):
    registry.strategy_names()

    class Other(Strategy):
        name = "lora"

    with pytest.raises(ValueError, match="'lora' is already registered"):
        registry.register_strategy(Other)


def test_unknown_name_lists_known_ones_and_suggests(fresh_registry):
    with pytest.raises(UserError, match=r"unknown strategy 'lroa' \(did you mean 'lora'\?\); known strategies: adalora, adapter, boft, fourierft, freeze, full"):
        registry.get_strategy("lroa")

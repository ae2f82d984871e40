"""LoRA variants reach PEFT and survive save -> reload: DoRA, rsLoRA, PiSSA/OLoRA (saved
converted, so they load on the untouched base), other inits, modules_to_save."""
from __future__ import annotations

import json

import pytest
import torch

from adapters_sft.errors import UserError
from adapters_sft.recipe import load_recipe
from adapters_sft.run_reader import load_run
from adapters_sft.trainer import build_trainer, train

IDS = torch.tensor([[1, 4, 10, 11, 2, 8, 1, 6, 12, 13]])


def trained_and_reloaded(recipe):
    result = train(recipe, echo=lambda *_: None)
    model = result.trainer.model.eval()
    reloaded, _, _ = load_run(result.run_dir)
    return result, model, reloaded


def logits(model, **batch):
    with torch.no_grad():
        return model(**(batch or {"input_ids": IDS})).logits


def test_dora_trains_a_magnitude_and_reloads(tiny_recipe):
    result, model, reloaded = trained_and_reloaded(tiny_recipe("lora", r=4, alpha=8, use_dora=True))
    assert any("lora_magnitude_vector" in n for n, p in model.named_parameters() if p.requires_grad)
    torch.testing.assert_close(logits(reloaded), logits(model), rtol=0, atol=1e-5)


def test_rslora_scales_by_alpha_over_sqrt_r(tiny_recipe, tmp_path):
    for rs, scale in ((False, 8 / 4), (True, 8 / 2)):
        trainer, _, _ = build_trainer(tiny_recipe("lora", r=4, alpha=8, use_rslora=rs), tmp_path / str(rs))
        layer = trainer.model.base_model.model.model.layers[0].self_attn.q_proj
        assert layer.scaling["default"] == pytest.approx(scale)


@pytest.mark.parametrize("init", ["pissa_niter_2", "olora"])
def test_base_rewriting_inits_are_saved_converted(tiny_recipe, init):
    import tempfile
    from pathlib import Path

    kept = lambda: set(Path(tempfile.gettempdir()).glob("adapters-sft-lora-init-*"))  # noqa: E731
    before = kept()
    result, model, reloaded = trained_and_reloaded(tiny_recipe("lora", r=4, alpha=4, init=init))
    config = json.loads((result.run_dir / "adapter" / "adapter_config.json").read_text())
    assert config["r"] == 8 and config["init_lora_weights"] is True  # 2r, plain LoRA on the base
    torch.testing.assert_close(logits(reloaded), logits(model), rtol=0, atol=1e-4)
    assert kept() == before  # the initial adapter kept for the conversion is gone


def test_other_inits_reach_peft(tiny_recipe, tmp_path):
    for init in ("gaussian", "orthogonal"):
        trainer, _, _ = build_trainer(tiny_recipe("lora", r=4, init=init), tmp_path / init)
        assert trainer.model.peft_config["default"].init_lora_weights == init


def test_modules_to_save_trains_and_saves_a_whole_module(cls_recipe):
    result, model, reloaded = trained_and_reloaded(
        cls_recipe("lora", r=4, alpha=8, dropout=0.0, modules_to_save=["pooler"]))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert "base_model.model.bert.pooler.modules_to_save.default.dense.weight" in trainable
    tok = result.trainer.processing_class
    batch = dict(tok(["cat red", "sun"], padding=True, return_tensors="pt"))
    torch.testing.assert_close(logits(reloaded, **batch), logits(model, **batch), rtol=0, atol=1e-5)


@pytest.mark.parametrize("override, message", [
    ("strategy.init=svd", r"strategy\.init: must be one of default, gaussian, orthogonal, pissa, olora"),
    ("strategy.loraplus_lr_ratio=0", r"strategy\.loraplus_lr_ratio: must be above 0, got 0"),
])
def test_bad_variant_options_are_named(override, message):
    with pytest.raises(UserError, match=r"^command line: " + message):
        load_recipe("smollm2-135m/lora", [override])


def test_qlora_refuses_inits_that_rewrite_its_quantized_base():
    with pytest.raises(UserError, match=r"strategy\.init: pissa rewrites the base weights, which qlora keeps quantized"):
        load_recipe("smollm2-135m/qlora", ["strategy.init=pissa"])


def test_modules_to_save_on_a_tied_lm_head(tiny_recipe):
    result, model, reloaded = trained_and_reloaded(
        tiny_recipe("lora", r=4, alpha=8, dropout=0.0, modules_to_save=["lm_head"]))
    assert any("lm_head.modules_to_save" in n for n, p in model.named_parameters() if p.requires_grad)
    torch.testing.assert_close(logits(reloaded), logits(model), rtol=0, atol=1e-5)

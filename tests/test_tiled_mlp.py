"""training.mlp_tile_tokens: the MLP computed in tiles trains exactly what it trains in one
piece (loss, every gradient, the input's gradient), under gradient checkpointing too, for LoRA
and 4-bit QLoRA through the real trainer; dropout masks are replayed in the backward pass; and
the forward pass keeps only the MLP's input."""
from __future__ import annotations

import copy

import pytest
import torch

from adapters_sft import tiled_mlp
from adapters_sft.errors import UserError
from adapters_sft.trainer import build_trainer


def _loss_and_grads(trainer, ids):
    model = trainer.model
    model.train()
    model.zero_grad(set_to_none=True)
    inputs = {"input_ids": ids, "labels": ids.clone(), "attention_mask": torch.ones_like(ids)}
    loss = trainer.compute_loss(model, inputs)
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("strategy,checkpointing", [("lora", False), ("lora", True), ("qlora", True)])
def test_tiled_mlp_trains_exactly_what_the_whole_mlp_trains(strategy, checkpointing, tiny_recipe, tmp_path):
    common = ["training.per_device_train_batch_size=2", "data.max_length=64",
              f"training.gradient_checkpointing={str(checkpointing).lower()}"]
    whole, _, _ = build_trainer(tiny_recipe(strategy, *common, r=4, dropout=0.0), tmp_path / "a")
    tiled, _, _ = build_trainer(tiny_recipe(strategy, *common, "training.mlp_tile_tokens=24", r=4,
                                            dropout=0.0), tmp_path / "b")
    assert len(tiled_mlp.mlps(tiled.model)) == 2
    assert all(isinstance(m.forward, __import__("functools").partial) for m in tiled_mlp.mlps(tiled.model))
    ids = torch.randint(4, 40, (2, 50))  # 100 tokens: 5 tiles, the last one short
    loss_a, grads_a = _loss_and_grads(whole, ids)
    loss_b, grads_b = _loss_and_grads(tiled, ids)
    assert grads_a.keys() == grads_b.keys() and any("mlp" in n for n in grads_b)
    assert loss_a == pytest.approx(loss_b, abs=1e-6)
    for name in grads_a:
        torch.testing.assert_close(grads_b[name], grads_a[name], atol=2e-6, rtol=1e-4, msg=name)


def _mlp_and_input(dropout: float):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=96, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2)
    model = get_peft_model(LlamaForCausalLM(config), LoraConfig(
        r=4, target_modules=["gate_proj", "up_proj", "down_proj"], lora_dropout=dropout,
        init_lora_weights="gaussian"))
    model.train()
    return model, model.base_model.model.model.layers[0].mlp, torch.randn(2, 15, 32, requires_grad=True)


def _grads(module, x):
    out = {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}
    out["input"] = x.grad.clone()
    module.zero_grad(set_to_none=True)
    x.grad = None
    return out


def test_dropout_masks_are_replayed_in_the_backward_pass():
    """With dropout on, the tiled MLP's gradients are those of its own forward pass: equal to
    autograd through the same tiles computed with grad (same seed, same masks)."""
    model, mlp, x = _mlp_and_input(0.5)
    torch.manual_seed(3)
    flat = x.reshape(-1, 32)
    reference = torch.cat([mlp(part) for part in flat.split(7)]).reshape(2, 15, 32)
    (reference * torch.arange(32)).sum().backward()
    expected = _grads(mlp, x)
    assert tiled_mlp.apply(model, 7) == 1
    torch.manual_seed(3)
    out = mlp(x)
    torch.testing.assert_close(out, reference, atol=0, rtol=0)
    (out * torch.arange(32)).sum().backward()
    got = _grads(mlp, x)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], atol=1e-6, rtol=1e-5, msg=name)
    tiled_mlp.apply(model, None)  # back in one piece
    assert mlp.forward == mlp._untiled_forward


def test_the_forward_pass_keeps_only_the_mlps_input():
    model, mlp, x = _mlp_and_input(0.0)
    saved: list[torch.Tensor] = []

    def count(t):
        saved.append(t)
        return t

    def kept() -> int:
        params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        return sum({t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in saved
                    if t.untyped_storage().data_ptr() not in params}.values())

    with torch.autograd.graph.saved_tensors_hooks(count, lambda t: t):
        mlp(x)
    whole = kept()
    saved.clear()
    tiled_mlp.apply(model, 8)
    with torch.autograd.graph.saved_tensors_hooks(count, lambda t: t):
        mlp(x)
    assert kept() == x.numel() * x.element_size() < whole / 5
    with torch.no_grad():  # evaluation and generation run the MLP whole
        assert mlp(x).shape == x.shape


def test_a_model_without_mlps_is_refused_naming_the_key(tiny_bert_dir):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=2)
    with pytest.raises(UserError, match="training.mlp_tile_tokens"):
        tiled_mlp.apply(model, 16)
    assert tiled_mlp.apply(copy.deepcopy(model), None) == 0

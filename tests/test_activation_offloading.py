"""training.activation_offloading is TRL's (trl/models/activation_offloading.py): what the
forward pass saves is copied out to host memory and copied back for the backward pass. On a
GPU that frees its memory; on a CPU there is nowhere else to put it, and TRL's context cannot
start (it asks for an accelerator), so training_args switches it off there.

The exactness of the round trip does not need a GPU: with the CPU taken for the accelerator,
TRL's own context copies every saved tensor into a fresh buffer and back. Loss and every
gradient are then equal with it on and off, for LoRA and 4-bit QLoRA, with gradient
checkpointing (whose layer inputs are what it moves) and a tiled MLP."""
from __future__ import annotations

import contextlib

import pytest
import torch

from adapters_sft.trainer import build_trainer
from adapters_sft.training.args import training_args


def _offloading_on_the_cpu(monkeypatch):
    from trl.models import activation_offloading

    monkeypatch.setattr(torch.accelerator, "current_accelerator", lambda *a, **k: torch.device("cpu"))
    monkeypatch.setattr(torch.cpu, "empty_cache", lambda: None, raising=False)  # CUDA's, on exit
    return activation_offloading.get_act_offloading_ctx_manager


def _step(trainer, ids, context):
    model = trainer.model
    model.train()
    model.zero_grad(set_to_none=True)
    inputs = {"input_ids": ids, "labels": ids.clone(), "attention_mask": torch.ones_like(ids)}
    with context:
        loss = trainer.compute_loss(model, inputs)
        offloaded = sum(1 for entry in getattr(context, "tracker", {}).values() if entry[1])
        loss.backward()
    return loss.item(), offloaded, {n: p.grad.clone() for n, p in model.named_parameters()
                                    if p.requires_grad}


@pytest.mark.parametrize("strategy,extra", [("lora", ()), ("qlora", ()),
                                            ("lora", ("training.mlp_tile_tokens=24",))])
def test_offloading_round_trip_leaves_loss_and_gradients_equal(strategy, extra, tiny_recipe, tmp_path,
                                                               monkeypatch):
    recipe = tiny_recipe(strategy, "training.per_device_train_batch_size=2", "data.max_length=64",
                         "training.gradient_checkpointing=true", *extra, r=4, dropout=0.0)
    trainer, _, _ = build_trainer(recipe, tmp_path / "work")
    ids = torch.randint(4, 40, (2, 50))
    loss_off, _, grads_off = _step(trainer, ids, contextlib.nullcontext())
    context = _offloading_on_the_cpu(monkeypatch)(trainer.model, use_pin_memory=False, use_streams=False)
    loss_on, offloaded, grads_on = _step(trainer, ids, context)
    assert offloaded >= 2  # at least each layer's input went out and came back
    assert loss_on == loss_off
    assert grads_on.keys() == grads_off.keys()
    for name in grads_off:
        torch.testing.assert_close(grads_on[name], grads_off[name], atol=0, rtol=0, msg=name)


def test_offloading_is_off_on_a_cpu_and_the_run_trains(tiny_recipe, tmp_path):
    from adapters_sft.trainer import train

    recipe = tiny_recipe("lora", "training.activation_offloading=true", "training.max_steps=2")
    assert training_args(recipe, tmp_path / "c").activation_offloading is False
    result = train(recipe, echo=lambda *a: None)
    assert result.trainer.state.global_step == 2

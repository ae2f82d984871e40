"""The plan's activation term against what autograd really keeps on the CPU: per decoder layer,
the bytes saved for the backward pass in a real training forward (the Trainer's own loss
computation, real tensors) equal the plan's trace of that layer on meta tensors."""
from __future__ import annotations

import pytest
import torch

from adapters_sft.plan import estimate
from adapters_sft.plan.activations import decoder_layers
from adapters_sft.trainer import build_trainer
from tests.plan.test_static import CPU


class LayerSaves:
    """Unique bytes autograd saves inside each decoder layer (parameters excluded)."""

    def __init__(self, model):
        self.params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self.per_layer: list[int] = []
        self.handles = []
        for layer in decoder_layers(model):
            self.handles += [layer.register_forward_pre_hook(self.enter),
                             layer.register_forward_hook(self.leave)]

    def enter(self, module, args):
        self.seen: dict[int, int] = {}
        self.ctx = torch.autograd.graph.saved_tensors_hooks(self.pack, lambda t: t)
        self.ctx.__enter__()

    def pack(self, t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in self.params:
            self.seen[ptr] = t.untyped_storage().nbytes()
        return t

    def leave(self, module, args, out):
        self.ctx.__exit__(None, None, None)
        self.per_layer.append(sum(self.seen.values()))


@pytest.mark.parametrize("strategy,opts,extra", [
    ("full", {}, ()), ("lora", {"r": 4}, ()), ("lora", {"r": 4, "dropout": 0.0}, ()),
    ("qlora", {"r": 4}, ()), ("freeze", {"trainable_layers": 1}, ()), ("ia3", {}, ()),
    ("adapter", {"reduction_factor": 4}, ()),
    # a tiled MLP keeps only its input; qlora with bf16 compute keeps bf16 hidden states
    ("lora", {"r": 4}, ("training.mlp_tile_tokens=16",)), ("full", {}, ("training.mlp_tile_tokens=16",)),
    ("qlora", {"r": 4}, ("dtype=bfloat16",)),
    # LoHa (traced in its not-training branch), a deeper model, blocks drawn at random
    ("loha", {}, ()), ("llama-pro", {"new_blocks": 2}, ()), ("lisa", {"active_blocks": 1}, ()),
])
def test_each_layer_keeps_what_the_plan_traced(strategy, opts, extra, tiny_recipe, tmp_path):
    batch, length = 2, 64
    recipe = tiny_recipe(strategy, f"training.per_device_train_batch_size={batch}",
                         f"data.max_length={length}", "training.gradient_checkpointing=false",
                         *extra, **opts)
    planned = next(t for t in estimate(recipe, CPU).terms if t.name == "activations").bytes
    trainer, _, _ = build_trainer(recipe, tmp_path / "work")
    model = trainer.model
    model.train()
    saves = LayerSaves(model)
    ids = torch.randint(4, 40, (batch, length))
    inputs = {"input_ids": ids, "labels": ids.clone(), "attention_mask": torch.ones_like(ids)}
    loss = trainer.compute_loss(model, inputs)
    assert loss.requires_grad and len(saves.per_layer) == model.config.num_hidden_layers
    assert planned == sum(saves.per_layer), (planned, saves.per_layer)


@pytest.fixture(scope="module")
def other_architectures(tmp_path_factory):
    """Tiny Llama with biases (as Qwen2's q/k/v), Qwen3 (norms on q and k) and Mistral models,
    saved. (A Qwen2 config makes transformers load its own tokenizer class over the test's.)"""
    from transformers import AutoConfig, AutoModelForCausalLM

    from tests.conftest import make_tokenizer

    tok = make_tokenizer()
    shape = dict(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                 pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    out = {}
    kinds = {"llama-bias": ("llama", {"attention_bias": True, "mlp_bias": True}),
             "qwen3": ("qwen3", {"head_dim": 16}), "mistral": ("mistral", {})}
    for name, (kind, extra) in kinds.items():
        out[name] = folder = tmp_path_factory.mktemp(name)
        AutoModelForCausalLM.from_config(AutoConfig.for_model(kind, **shape, **extra)).save_pretrained(folder)
        tok.save_pretrained(folder)
    return out


@pytest.mark.parametrize("kind", ["llama-bias", "qwen3", "mistral"])
@pytest.mark.parametrize("strategy", ["lora", "full"])
def test_other_architectures_keep_what_the_plan_traced(kind, strategy, other_architectures,
                                                       tiny_recipe, tmp_path):
    batch, length = 2, 64
    recipe = tiny_recipe(strategy, f"model={other_architectures[kind]}",
                         f"training.per_device_train_batch_size={batch}",
                         "training.gradient_checkpointing=false")
    planned = next(t for t in estimate(recipe, CPU).terms if t.name == "activations").bytes
    trainer, _, _ = build_trainer(recipe, tmp_path / "work")
    saves = LayerSaves(trainer.model)
    ids = torch.randint(4, 40, (batch, length))
    trainer.model.train()
    trainer.compute_loss(trainer.model, {"input_ids": ids, "labels": ids.clone(),
                                         "attention_mask": torch.ones_like(ids)})
    assert planned == sum(saves.per_layer), (kind, planned, saves.per_layer)

"""NEFTune (`training.neftune_noise_alpha`, the Trainer's own hook; Jain et al. 2023): noise
of NEFTune's size is added to the embeddings in training steps, and none in the evaluations
during training, nor in generation afterwards."""
from __future__ import annotations

import math

import pytest
import torch

from adapters_sft.trainer import build_trainer

ALPHA = 5.0


@pytest.mark.parametrize("strategy", ["lora", "full"])  # PEFT wraps the embeddings' owner
def test_noise_in_training_steps_only(strategy, tiny_recipe, tmp_path):
    recipe = tiny_recipe(strategy, f"training.neftune_noise_alpha={ALPHA}", "training.eval_strategy=steps",
                         "training.eval_steps=2", "training.max_steps=4")
    trainer, _, _ = build_trainer(recipe, tmp_path / "w")
    model = trainer.model
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    embed, first_block = inner.get_input_embeddings(), inner.model.layers[0]
    seen: list[tuple[bool, float, float]] = []  # (training?, max |noise|, NEFTune's bound)
    ids: list[torch.Tensor] = []
    embed.register_forward_pre_hook(lambda module, args: ids.append(args[0]))

    def record(module, args, kwargs):
        hidden = kwargs.get("hidden_states", args[0] if args else None)
        clean = embed.weight[ids[-1]]
        seen.append((model.training, (hidden - clean).abs().max().item(),
                     ALPHA / math.sqrt(hidden.shape[1] * hidden.shape[2])))

    first_block.register_forward_pre_hook(record, with_kwargs=True)
    trainer.train()
    steps = [s for s in seen if s[0]]
    evals = [s for s in seen if not s[0]]
    assert len(steps) == 4 and evals, seen  # 4 steps (batch 4, no accumulation), 2 evaluations
    for _, noise, bound in steps:  # uniform in [-bound, bound]: its max comes close to the bound
        assert bound / 2 < noise <= bound + 1e-6, (noise, bound)
    assert all(noise == 0 for _, noise, _ in evals), evals

    seen.clear()
    model.eval()
    with torch.no_grad():
        model.generate(input_ids=torch.tensor([[1, 4, 10, 11]]), max_new_tokens=3, do_sample=False)
    assert seen and all(noise == 0 for _, noise, _ in seen), seen
    assert not embed._forward_hooks  # the Trainer took its hook off after training

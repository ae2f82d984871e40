"""The virtual-token methods (strategies/prompt_methods.py): the held-out loss scores the
input's positions, not the virtual tokens'. That generate() answers what the model predicts
is proven on SmolLM2 (tests/integration/test_prompt_methods_smollm2.py): on the tiny model the
cache's fault does not show."""
from __future__ import annotations

import pytest
import torch

from adapters_sft.run_reader import load_run
from adapters_sft.scores.generative import lm_loss
from adapters_sft.trainer import train


def test_held_out_loss_scores_the_inputs_positions(tiny_recipe):
    from datasets import Dataset

    result = train(tiny_recipe("prompt-tuning", "training.max_steps=2", num_virtual_tokens=4),
                   echo=lambda *_: None)
    model, _, _ = load_run(result.run_dir)
    ids = [1, 4, 10, 11, 2, 8, 1, 6]
    rows = Dataset.from_dict({"input_ids": [ids], "labels": [[-100] * 4 + ids[4:]]})
    got = lm_loss(model, rows, pad_id=0)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, -len(ids):-1]
    want = torch.nn.functional.cross_entropy(logits[3:], torch.tensor(ids[4:]))
    assert got["tokens"] == 4 and got["loss"] == pytest.approx(float(want), rel=1e-5)

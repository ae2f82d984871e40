"""QLoRA on CUDA: the 4-bit base sits on the GPU, the adapter trains in bf16 (as the QLoRA
paper recommends), and a few steps change only the adapter. Skipped without CUDA."""
from __future__ import annotations

import pytest
import torch

from adapters_sft.trainer import build_trainer

pytestmark = pytest.mark.gpu


def test_qlora_4bit_trains_on_cuda(tiny_recipe, tmp_path):
    import bitsandbytes as bnb

    trainer, _, _ = build_trainer(tiny_recipe("qlora", bits=4, r=4, alpha=8, dropout=0.0),
                                  tmp_path / "w")
    quant = [m for m in trainer.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert quant and all(m.weight.device.type == "cuda" for m in quant)
    lora = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert lora and all(p.dtype == torch.bfloat16 for p in lora.values())
    trainer.train()
    params = dict(trainer.model.named_parameters())
    assert all(not torch.equal(v, params[n]) for n, v in lora.items())

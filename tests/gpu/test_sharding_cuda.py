"""FSDP on CUDA (skipped without it): `train --nproc N` with distributed.sharding=fsdp trains
LoRA and FSDP-QLoRA (4-bit weights stored as bf16) on one GPU, and on two where there are two,
through the real launcher, into a normal run directory."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from adapters_sft.cli.main import main

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("strategy", ["lora", "qlora"])
@pytest.mark.parametrize("gpus", [1, 2])
def test_fsdp_trains_on_cuda(strategy, gpus, tiny_recipe, tmp_path):
    if torch.cuda.device_count() < gpus:
        pytest.skip(f"needs {gpus} CUDA GPUs")
    recipe = tiny_recipe(strategy, r=4, dropout=0.0)
    out = tmp_path / "run"
    assert main(["train", recipe.source, "distributed.sharding=fsdp", "training.max_steps=3",
                 "eval.metric=exact_match", f"output_dir={out}", "--nproc", str(gpus)]) == 0
    adapter = load_file(str(next((out / "adapter").glob("*.safetensors"))))
    assert any(t.abs().sum() > 0 for n, t in adapter.items() if "lora_B" in n)  # it trained
    assert (out / "eval.json").is_file()  # generation under FSDP scored the held-out rows

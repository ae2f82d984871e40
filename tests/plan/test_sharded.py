"""The plan of one process of a sharded run (plan/sharded.py): what FSDP and ZeRO split, what
is gathered whole, what offloading moves to CPU RAM; and the shipped multi-GPU recipes."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from adapters_sft.cli.main import main
from adapters_sft.plan import estimate
from adapters_sft.plan.target import named_gpu
from adapters_sft.recipe import load_recipe

CONFIGS = Path(__file__).resolve().parents[2] / "adapters_sft" / "plan" / "configs"


def terms(est) -> dict[str, int]:
    return {t.name: t.bytes for t in est.terms}


def test_fsdp_splits_every_static_term_and_gathers_the_root_and_two_layers(tiny_recipe, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    gpu = named_gpu("24GB")
    whole = terms(estimate(tiny_recipe("full"), gpu))
    est = estimate(tiny_recipe("full", "distributed.sharding=fsdp"), gpu, processes=4)
    split = terms(est)
    for name in ("trainable parameters", "optimizer states"):
        assert split[name] == math.ceil(whole[name] / 4)
    assert split["activations"] == whole["activations"]  # each process runs its own rows
    assert "DDP buckets" not in split
    # what is gathered, from the real model's parameters (bf16 on a GPU, as the plan assumes)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16)
    layer = sum(p.numel() * 2 for p in model.model.layers[0].parameters())
    in_layers = {id(p) for block in model.model.layers for p in block.parameters()}
    root = sum(p.numel() * 2 for p in model.parameters() if id(p) not in in_layers)
    assert split["gathered whole"] == root + 2 * layer + layer  # + one layer's gradients (all train)
    assert any("not yet measured on GPUs" in note for note in est.notes)


def test_zero2_keeps_weights_whole_and_offloading_moves_split_state_to_cpu_ram(tiny_recipe):
    gpu = named_gpu("24GB")
    whole = terms(estimate(tiny_recipe("lora"), gpu))
    zero2 = terms(estimate(tiny_recipe("lora", "distributed.sharding=zero2"), gpu, processes=2))
    assert zero2["base weights"] == whole["base weights"]
    assert zero2["optimizer states"] == math.ceil(whole["optimizer states"] / 2)
    assert "gathered whole" not in zero2
    offload = estimate(tiny_recipe("lora", "distributed.sharding=fsdp", "distributed.cpu_offload=true"),
                       gpu, processes=2)
    off = terms(offload)
    assert off["base weights"] == off["optimizer states"] == 0
    assert "offloaded (CPU RAM)" in off


def test_sharded_qlora_keeps_its_other_weights_in_the_compute_dtype():
    """FSDP-QLoRA: no fp32 cast of embeddings, norms and head (one dtype to split), even
    where strategy.upcast_base asks for it."""
    gpu = named_gpu("24GB")
    plain = terms(estimate(load_recipe("gpu-24gb/llama-3.1-8b-qlora", ["strategy.upcast_base=true"]), gpu))
    sharded = estimate(load_recipe("gpu-24gb/llama-3.1-8b-qlora", ["distributed.sharding=fsdp",
                                                                   "strategy.upcast_base=true"]),
                       gpu, processes=1)
    # Llama-3.1-8B's embeddings and head: 2 x 128256 x 4096 numbers, 4 bytes -> 2
    cast = 2 * 128256 * 4096 * 2
    assert plain["base weights"] - terms(sharded)["base weights"] == pytest.approx(cast, rel=0.001)


def test_the_70b_recipe_needs_offloading_on_two_24gb_gpus(capsys):
    assert main(["plan", "gpu-2x24gb/llama-3.1-70b-qlora", "distributed.cpu_offload=false",
                 "--nproc", "2", "--gpu", "24GB"]) == 1
    out = capsys.readouterr().out
    assert "does NOT fit" in out and "would fit with distributed.cpu_offload=true" in out
    assert main(["plan", "gpu-2x24gb/llama-3.1-70b-qlora", "--nproc", "2", "--gpu", "24GB"]) == 0
    assert "a process of 24.00 GiB on a 24 GB GPU: fits" in capsys.readouterr().out


def test_the_shipped_70b_config_has_the_published_size():
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(CONFIGS / "meta-llama--Llama-3.1-70B-Instruct.json")
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    assert round(sum(p.numel() for p in model.parameters()) / 1e9, 1) == 70.6  # Meta: 70.6B

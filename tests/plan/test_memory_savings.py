"""The plan's terms for what saves memory on a GPU: the weights qlora no longer casts to fp32,
activations offloaded to host RAM, a tiled MLP, and `plan --longest`; and the figures the
shipped consumer recipes were chosen by (planned, from config.json alone)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from adapters_sft.cli.main import main
from adapters_sft.plan import estimate
from adapters_sft.plan.longest import longest
from adapters_sft.plan.target import named_gpu
from adapters_sft.recipe import load_recipe
from tests.plan.test_static import CPU

CONFIG = Path(__file__).resolve().parents[2] / "adapters_sft/plan/configs/meta-llama--Llama-3.1-8B-Instruct.json"
QLORA_8B = "gpu-24gb/llama-3.1-8b-qlora"
GPU24 = named_gpu("24GB")


def terms(recipe: str, *overrides: str, target=GPU24) -> dict:
    est = estimate(load_recipe(recipe, list(overrides)), target)
    return {**{t.name: t.bytes for t in est.terms}, "host": est.host, "needed": est.needed}


def test_qlora_keeps_the_unquantized_weights_in_bf16_unless_asked():
    c = json.loads(CONFIG.read_text())
    # embeddings and the untied head, two norms a layer and the final one
    unquantized = 2 * c["vocab_size"] * c["hidden_size"] + (2 * c["num_hidden_layers"] + 1) * c["hidden_size"]
    lean = terms(QLORA_8B, "training.activation_offloading=false")
    upcast = terms(QLORA_8B, "training.activation_offloading=false", "strategy.upcast_base=true")
    assert upcast["base weights"] - lean["base weights"] == 2 * unquantized  # 4 bytes, not 2
    # the hidden states between layers (what checkpointing keeps) are bf16 too: half the bytes
    assert upcast["activations"] == 2 * lean["activations"]


def test_offloading_moves_what_the_layers_keep_to_host_ram_on_a_gpu_only():
    on = terms(QLORA_8B, "training.activation_offloading=true")
    off = terms(QLORA_8B, "training.activation_offloading=false")
    assert on["activations"] + on["host"] == off["activations"] and off["host"] == 0
    assert on["activations"] == off["activations"] * 5 // 32  # TRL's stash: 5 of 32 layers
    recipe = load_recipe("smollm2-135m/lora", ["training.activation_offloading=true"])
    cpu = estimate(recipe, CPU)
    assert cpu.host == 0 and not cpu.settings.offload and any("off on a CPU" in n for n in cpu.notes)


def test_a_tiled_mlp_lowers_the_re_run_layer_and_nothing_else():
    whole = terms(QLORA_8B, "training.mlp_tile_tokens=null", "data.max_length=16384",
                  "training.per_device_train_batch_size=1")
    tiled = terms(QLORA_8B, "training.mlp_tile_tokens=1024", "data.max_length=16384",
                  "training.per_device_train_batch_size=1")
    assert tiled["backward peak"] < whole["backward peak"] / 2
    assert tiled["activations"] == whole["activations"] and tiled["base weights"] == whole["base weights"]


def test_longest_is_the_last_length_that_fits(tiny_recipe):
    recipe = tiny_recipe("lora", "training.gradient_checkpointing=true")
    target = named_gpu("0.6GB")
    result = longest(recipe, target)
    assert result.tokens > 0 and result.batch == 4
    assert estimate(recipe, target, longest=result.tokens).fits
    assert not estimate(recipe, target, longest=result.tokens + 1).fits


def test_the_24gb_recipe_at_batch_2_plans_below_7_4_gib(capsys):
    assert main(["plan", QLORA_8B, "training.per_device_train_batch_size=2", "--gpu", "24GB"]) == 0
    needed = float(re.search(r"needs about ([\d.]+) GiB", capsys.readouterr().out).group(1))
    assert needed <= 7.4


@pytest.mark.parametrize("card", ["8gb", "12gb", "16gb"])
def test_each_consumer_recipe_fits_its_card(card, capsys):
    assert main(["plan", f"gpu-{card}/llama-3.1-8b-qlora", "--gpu", card.upper()]) == 0
    assert ": fits (" in capsys.readouterr().out


UNSLOTH = {"8GB": 2972, "12GB": 21848, "16GB": 40724, "24GB": 78475}  # docs/memory.md


def test_longest_at_rank_32_batch_1_reaches_the_published_unsloth_lengths(capsys):
    cards = [a for card in UNSLOTH for a in ("--gpu", card)]
    main(["plan", QLORA_8B, "training.per_device_train_batch_size=1", "strategy.r=32", "--longest", *cards])
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("adapters-sft: longest")]
    assert len(lines) == 4
    for line, (card, published) in zip(lines, UNSLOTH.items()):
        assert f"on a {card[:-2]} GB GPU" in line
        tokens = int(re.search(r": ([\d,]+) tokens", line).group(1).replace(",", ""))
        assert tokens >= published, line

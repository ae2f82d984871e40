"""Every strategy, one table: exactly the intended parameters train, a few steps change
them and nothing else, and save -> reload reproduces the trained model's logits."""
from __future__ import annotations

import re

import pytest
import torch

from adapters_sft.registry import strategy_names
from adapters_sft.run_reader import load_run
from adapters_sft.trainer import build_trainer, train

# strategy -> (options, pattern every trainable parameter name must match, expected count)
CASES = {
    "head-only": ({}, r"^lm_head\.weight$", 1),
    "full": ({}, r".", None),  # every parameter
    # the top block, the final norm and the untied head: 9 + 1 + 1
    "freeze": ({"trainable_layers": 1}, r"^(model\.layers\.1\.|model\.norm\.|lm_head\.)", 11),
    "lora": ({"r": 4, "alpha": 8, "dropout": 0.0}, r"\.lora_[AB]\.", 2 * 7 * 2),
    "qlora": ({"r": 4, "alpha": 8, "dropout": 0.0, "bits": 4}, r"\.lora_[AB]\.", 2 * 7 * 2),
    # (IA)^3 vectors on k_proj, v_proj and down_proj (PEFT's Llama default) in 2 blocks
    "ia3": ({}, r"\.ia3_l\.", 3 * 2),
    "adapter": ({"kind": "houlsby", "reduction_factor": 4}, r"\.adapter\.(down|up)\.", 2 * 2 * 4),
    # PEFT's other methods (peft_methods.py) with PEFT's defaults: q_proj and v_proj in 2 blocks
    "loha": ({}, r"\.hada_w[12]_[ab]\.", 4 * 2 * 2),
    "lokr": ({}, r"\.lokr_w[12]\.", 2 * 2 * 2),
    "vera": ({}, r"\.vera_lambda_[bd]\.", 2 * 2 * 2),
    "oft": ({}, r"\.oft_R\.", 2 * 2),
    "boft": ({}, r"\.boft_[Rs]\.", 2 * 2 * 2),
    "hra": ({}, r"\.hra_u\.", 2 * 2),
    "fourierft": ({}, r"\.fourierft_spectrum\.", 2 * 2),
    # AdaLoRA: the SVD form's three factors on q_proj and v_proj in 2 blocks
    "adalora": ({}, r"\.lora_[ABE]\.", 3 * 2 * 2),
    # the virtual tokens' embedding; P-tuning's also its MLP encoder (3 linear layers)
    "prompt-tuning": ({"num_virtual_tokens": 4}, r"^prompt_encoder\.default\.embedding\.weight$", 1),
    "p-tuning": ({"num_virtual_tokens": 4, "encoder_hidden_size": 16},
                 r"^prompt_encoder\.default\.(embedding|mlp_head)\.", 1 + 2 * 3),
    # the copy of block 1 inserted after it (a Llama block holds 9 tensors)
    "llama-pro": ({"new_blocks": 1}, r"^model\.layers\.2\.", 9),
    # the embeddings (the tied head), the final norm and the one block drawn for the first stage
    "lisa": ({"active_blocks": 1}, r"^model\.(embed_tokens|norm|layers\.[01]\.)", 1 + 1 + 9),
}


def test_table_covers_exactly_the_builtin_strategies():
    from importlib import metadata

    ours = {ep.name for ep in metadata.entry_points(group="adapters_sft.strategies")
            if ep.dist and ep.dist.name.replace("_", "-") == "adapters-sft"}
    assert set(CASES) == ours and ours <= set(strategy_names())


def _ids() -> torch.Tensor:
    return torch.tensor([[1, 4, 10, 11, 2, 8, 1, 6, 12, 13]])


@pytest.mark.parametrize("name", CASES)
def test_trains_exactly_the_intended_parameters(name, tiny_recipe, tmp_path):
    opts, pattern, count = CASES[name]
    trainer, _, _ = build_trainer(tiny_recipe(name, **opts), tmp_path / "work")
    model = trainer.model
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(re.search(pattern, n) for n in trainable), sorted(trainable)[:5]
    if count is None:
        assert trainable == set(before)
    else:
        assert len(trainable) == count

    trainer.train()
    after = dict(model.named_parameters())
    for n, old in before.items():
        changed = not torch.equal(old, after[n].detach())
        assert changed == (n in trainable), f"{n}: changed={changed}, trainable={n in trainable}"


@pytest.mark.parametrize("name", CASES)
def test_save_and_reload_reproduce_the_trained_logits(name, tiny_recipe):
    opts, _, _ = CASES[name]
    result = train(tiny_recipe(name, **opts), echo=lambda *_: None)
    trained = result.trainer.model.eval()
    with torch.no_grad():
        expected = trained(input_ids=_ids()).logits
    reloaded, tokenizer, recipe = load_run(result.run_dir)
    with torch.no_grad():
        got = reloaded(input_ids=_ids()).logits
    assert recipe.strategy.name == name
    assert tokenizer.chat_template and "generation" in tokenizer.chat_template
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    # only what trained was saved
    trainable = {n for n, p in trained.named_parameters() if p.requires_grad}
    saved = _saved_tensor_names(result.run_dir)
    if name in ("head-only", "adapter", "freeze", "llama-pro"):
        assert saved == trainable
    elif name in ("lora", "qlora"):  # PEFT drops the adapter name from its keys
        assert saved == {n.replace(".default", "") for n in trainable}
    elif name in ("prompt-tuning", "p-tuning"):  # PEFT saves the virtual tokens' embeddings,
        assert saved == {"prompt_embeddings"}     # P-tuning's as its encoder computes them
    else:
        assert len(saved) >= len(trainable) - 1  # full: all (a tied head is stored once)


def _saved_tensor_names(run_dir) -> set[str]:
    from safetensors import safe_open

    names: set[str] = set()
    for f in run_dir.glob("*/*.safetensors"):
        if f.parent.name in ("adapter", "weights"):
            with safe_open(str(f), "pt") as h:
                names |= set(h.keys())
    return names


def test_seed_fixes_the_adapter_initialisation(tiny_recipe, tmp_path):
    def lora_a() -> torch.Tensor:
        trainer, _, _ = build_trainer(tiny_recipe("lora"), tmp_path / "w")
        return next(p for n, p in trainer.model.named_parameters() if "lora_A" in n).detach().clone()

    assert torch.equal(lora_a(), lora_a())

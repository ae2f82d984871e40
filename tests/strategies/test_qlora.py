"""QLoRA on bitsandbytes' CPU path: gradients stay right after an evaluation pass.

FACTS.md: on CPUs with AVX512-BF16, a 4-bit layer run once in eval mode without grad repacks
its weights for inference and silently loses its backward path (LoRA gradients shrink, no
error). The strategy switches that off; this test evaluates (generates) first, then compares
the LoRA gradients with those of a dequantized full-precision copy of the same model.
"""
from __future__ import annotations

import pytest
import torch

from adapters_sft.scores.generative import generate
from adapters_sft.trainer import build_trainer


def _lora_grads(model, batch) -> dict[str, torch.Tensor]:
    model.zero_grad()
    model(**batch).loss.backward()
    return {n: p.grad.detach().float().clone() for n, p in model.named_parameters() if "lora_" in n}


@pytest.mark.parametrize("bits", [4, 8])
def test_lora_gradients_after_eval_match_dequantized_reference(bits, tiny_recipe, tmp_path):
    import bitsandbytes as bnb
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    recipe = tiny_recipe("qlora", bits=bits, r=4, alpha=8, dropout=0.0)
    trainer, _, _ = build_trainer(recipe, tmp_path / "work")
    model, tok = trainer.model, trainer.processing_class
    quant_cls = bnb.nn.Linear4bit if bits == 4 else bnb.nn.Linear8bitLt
    assert any(isinstance(m, quant_cls) for m in model.modules()), "base is not quantized"
    # the trap only bites on AVX512-BF16 CPUs; the switch must be off wherever we run
    assert all(not m.support_avx512bf16_for_cpu for m in model.modules()
               if isinstance(m, bnb.nn.Linear4bit))
    lora = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert lora and all(p.dtype == torch.float32 for p in lora.values())
    with torch.no_grad():  # make B non-zero so every LoRA matrix gets a gradient
        for n, p in lora.items():
            p.normal_(0, 0.05)

    generate(model, tok, [[{"role": "user", "content": "what is one"}]], 4, 1)  # eval pass
    model.train()
    batch = {"input_ids": torch.tensor([[1, 5, 10, 11, 2, 1, 6, 12, 13, 2]])}
    batch["labels"] = batch["input_ids"]
    got = _lora_grads(model, batch)

    # Reference: the same quantized weights, dequantized to fp32, with the same LoRA weights.
    ref_base = AutoModelForCausalLM.from_pretrained(recipe.model, dtype=torch.float32)
    with torch.no_grad():
        for name, module in model.base_model.model.named_modules():
            if isinstance(module, quant_cls):
                target = ref_base.get_submodule(name.removesuffix(".base_layer"))
                if bits == 4:
                    w = bnb.functional.dequantize_4bit(module.weight.data, module.weight.quant_state)
                else:
                    # after the first forward bitsandbytes keeps the row scales in module.state
                    scb = module.weight.SCB if module.weight.SCB is not None else module.state.SCB
                    w = module.weight.data.float() * scb.float()[:, None] / 127
                target.weight.copy_(w.float())
    ref = get_peft_model(ref_base, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                              target_modules="all-linear", task_type="CAUSAL_LM"))
    ref.load_state_dict({n: p.detach() for n, p in lora.items()}, strict=False)
    want = _lora_grads(ref, batch)

    assert set(got) == set(want)
    # 4-bit computes in fp32 and must match closely; LLM.int8 also casts activations to fp16,
    # so 8-bit is held to direction and size rather than to every digit.
    for name in want:
        if bits == 4:
            torch.testing.assert_close(got[name], want[name], rtol=2e-3, atol=1e-5, msg=name)
        else:
            cos = torch.nn.functional.cosine_similarity(got[name].flatten(), want[name].flatten(), dim=0)
            ratio = got[name].norm() / want[name].norm()
            assert cos > 0.999 and abs(ratio - 1) < 0.02, (name, float(cos), float(ratio))

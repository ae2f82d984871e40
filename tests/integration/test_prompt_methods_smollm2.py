"""Generation with virtual tokens (prompt tuning, P-tuning) on SmolLM2 answers what the model
itself predicts token by token. With the key-value cache, PEFT 0.21.2 under transformers 5.24
does not (scores/generative.py: cache_agrees); this test fails if generation uses it."""
from __future__ import annotations

import pytest
import torch

from adapters_sft.scores.generative import cache_agrees, generate

pytestmark = pytest.mark.integration


def _by_hand(model, ids: torch.Tensor, steps: int) -> torch.Tensor:
    """Greedy continuation, one full forward pass per token: the model as it is trained."""
    with torch.no_grad():
        for _ in range(steps):
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
            ids = torch.cat([ids, logits[:, -1:].argmax(-1)], 1)
    return ids


@pytest.mark.parametrize("config_name", ["PromptTuningConfig", "PromptEncoderConfig"])
def test_generate_answers_the_models_own_greedy_continuation(config_name):
    import peft

    from adapters_sft.models import load_model, load_tokenizer

    torch.manual_seed(0)
    tokenizer = load_tokenizer("smollm2-135m-instruct")
    base = load_model("smollm2-135m-instruct", {"dtype": torch.float32})
    extra = {"prompt_tuning_init": "SAMPLE_VOCAB"} if config_name == "PromptTuningConfig" else {}
    model = peft.get_peft_model(base, getattr(peft, config_name)(
        task_type="CAUSAL_LM", num_virtual_tokens=8, **extra)).eval()
    messages = [{"role": "user", "content": "Convert to ISO 8601 (YYYY-MM-DD): December 29, 2012"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids
    expected = tokenizer.decode(_by_hand(model, ids, 10)[0, ids.shape[1]:], skip_special_tokens=True)
    [answer] = generate(model, tokenizer, [messages], max_new_tokens=10, batch_size=1)
    assert answer == expected
    assert not cache_agrees(model)

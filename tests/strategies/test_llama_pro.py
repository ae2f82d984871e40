"""llama-pro: the expanded model starts as the base, only the new blocks train, the merged
model is an ordinary deeper model, and what cannot be expanded is refused in one line."""
from __future__ import annotations

import json

import pytest
import torch

from adapters_sft.cli.main import main
from adapters_sft.errors import UserError
from adapters_sft.strategies.llama_pro import LlamaProOptions, LlamaProStrategy, insert_positions

IDS = torch.tensor([[1, 4, 10, 11, 2, 8, 1, 6]])


def _llama(layers: int = 4, auto: str = "LlamaForCausalLM") -> torch.nn.Module:
    import transformers

    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=128,
                                      num_hidden_layers=layers, num_attention_heads=4,
                                      num_key_value_heads=2, tie_word_embeddings=True, pad_token_id=0)
    return getattr(transformers, auto)(config).eval()


def _strategy(**opts) -> LlamaProStrategy:
    return LlamaProStrategy(LlamaProOptions(name="llama-pro", **opts))


@pytest.mark.parametrize("new", [1, 2, 4])
def test_expanded_model_starts_as_the_base_with_and_without_the_kv_cache(new):
    model = _llama()
    with torch.no_grad():
        logits = model(input_ids=IDS).logits
        greedy = model.generate(IDS, max_new_tokens=8, do_sample=False)
    _strategy(new_blocks=new).prepare(model)
    layers = model.model.layers
    assert len(layers) == model.config.num_hidden_layers == 4 + new
    assert [layer.self_attn.layer_idx for layer in layers] == list(range(4 + new))
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=IDS).logits, logits, rtol=0, atol=0)
        assert torch.equal(model.generate(IDS, max_new_tokens=8, do_sample=False), greedy)
    # the copies sit after each group, and only they (untied head left alone) train
    trainable = {n.split(".")[2] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {str(i) for i in insert_positions(4, new)}
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert all(layer.self_attn.config is model.config for layer in layers)  # not a copy of it


def test_train_head_unties_it_and_trains_it_too():
    model = _llama()
    _strategy(new_blocks=1, train_head=True).prepare(model)
    assert model.lm_head.weight is not model.model.embed_tokens.weight
    assert model.lm_head.weight.requires_grad and not model.model.embed_tokens.weight.requires_grad


def test_a_classifier_keeps_its_new_head_trainable():
    model = _llama(auto="LlamaForSequenceClassification")
    _strategy(new_blocks=2).prepare(model)
    assert model.score.weight.requires_grad and len(model.model.layers) == 6


def test_per_layer_config_lists_grow_with_the_copies():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                         num_attention_heads=2, num_key_value_heads=1,
                         layer_types=["full_attention", "sliding_attention"] * 2, sliding_window=8)
    model = Qwen2ForCausalLM(config)
    _strategy(new_blocks=2).prepare(model)
    assert model.config.layer_types == ["full_attention", "sliding_attention", "sliding_attention"] * 2


def test_refusals_name_the_key_and_the_fix():
    with pytest.raises(UserError, match=r"strategy.new_blocks: 3 does not divide the model's 4 "
                                        r"blocks into equal groups; use one of \[1, 2, 4\]"):
        _strategy(new_blocks=3).prepare(_llama())
    from transformers import BertConfig, BertForSequenceClassification

    bert = BertForSequenceClassification(BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2,
                                                    num_attention_heads=2, intermediate_size=64))
    with pytest.raises(UserError, match="needs a pre-norm decoder.*post-norm encoder such as BERT"):
        _strategy(new_blocks=1).prepare(bert)


def test_run_merges_into_a_deeper_model_that_transformers_loads(tiny_recipe, tmp_path):
    from transformers import AutoModelForCausalLM

    from adapters_sft.run_reader import load_run
    from adapters_sft.trainer import train

    recipe = tiny_recipe("llama-pro", new_blocks=2)
    result = train(recipe, echo=lambda *_: None)
    saved = json.loads((result.run_dir / "weights" / "config.json").read_text())
    assert saved == {"strategy": "llama-pro", "new_blocks": 2, "layers": 4}
    model, _, _ = load_run(result.run_dir)
    with torch.no_grad():
        expected = model.eval()(input_ids=IDS).logits
    out = tmp_path / "merged"
    assert main(["merge", str(result.run_dir), "--out", str(out)]) == 0
    merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    assert merged.config.num_hidden_layers == 4 and len(merged.model.layers) == 4
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=IDS).logits, expected, rtol=0, atol=1e-5)
    # the trained copies moved off zero; the originals did not move
    base = AutoModelForCausalLM.from_pretrained(recipe.model)
    assert merged.model.layers[1].mlp.down_proj.weight.abs().sum() > 0
    torch.testing.assert_close(merged.model.layers[0].mlp.up_proj.weight,
                               base.model.layers[0].mlp.up_proj.weight, rtol=0, atol=0)

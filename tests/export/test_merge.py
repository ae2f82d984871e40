"""merge on tiny models: each strategy folds what it trained, the drift check gates the write,
the merged folder stands alone in plain transformers."""
from __future__ import annotations

import json

import pytest
import torch

from adapters_sft.cli.main import main


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.mark.parametrize("strategy", ["lora", "head-only", "full", "qlora", "ia3", "loha", "vera", "oft",
                                      "adalora", "llama-pro"])
def test_merge_matches_the_run_and_loads_in_plain_transformers(strategy, bpe_models, train_run,
                                                                 tmp_path, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from adapters_sft import load_run

    run = train_run(bpe_models["llama"], strategy)
    out = tmp_path / "merged"
    assert main(["merge", str(run), "--out", str(out)]) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "drift (as trained vs merged): max |Δlogit|" in printed
    report = json.loads((out / "merge_report.json").read_text())
    assert report["drift"]["agreement"] == 1.0 and report["drift"]["mean_abs"] < 1e-4
    assert report["probes"] == "8 held-out rows"
    if strategy == "qlora":  # what quantization cost is shown, against both references
        assert set(report["quantization"]) == {"training-time quantized model",
                                               "adapter on the original full-precision base"}
        assert "quantization cost" in printed
    trained, tok, _ = load_run(run)
    merged = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora" in n for n, _ in merged.named_parameters())
    ids = tok("what is cat", return_tensors="pt").input_ids
    assert torch.allclose(_logits(trained, ids), _logits(merged, ids), atol=1e-4)
    plain_tok = AutoTokenizer.from_pretrained(out)
    assert plain_tok.chat_template == tok.chat_template and "{% generation %}" in plain_tok.chat_template
    assert tok.eos_token_id in merged.generation_config.eos_token_id
    assert not list(tmp_path.glob(".merged*")), "staging folder left behind"
    card = (out / "README.md").read_text()
    assert "library_name: \"transformers\"" in card and f"Strategy `{strategy}`" in card


def test_training_changed_what_the_merge_keeps(bpe_models, train_run, tmp_path):
    """Guards the test above against a run that trained nothing: the merge differs from the base."""
    from transformers import AutoModelForCausalLM

    run = train_run(bpe_models["llama"], "lora")
    assert main(["merge", str(run), "--out", str(tmp_path / "m")]) == 0
    base = AutoModelForCausalLM.from_pretrained(bpe_models["llama"])
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    ids = torch.tensor([[5, 6, 7, 8]])
    assert (_logits(base, ids) - _logits(merged, ids)).abs().max() > 1e-3


def test_head_only_merge_keeps_its_own_head(bpe_models, train_run, tmp_path):
    from transformers import AutoModelForCausalLM

    run = train_run(bpe_models["llama"], "head-only")
    assert main(["merge", str(run), "--out", str(tmp_path / "m")]) == 0
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    assert merged.config.tie_word_embeddings is False
    assert not torch.equal(merged.lm_head.weight, merged.model.embed_tokens.weight)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_merge_dtype(dtype, bpe_models, train_run, tmp_path):
    from safetensors import safe_open

    run = train_run(bpe_models["llama"], "lora")
    assert main(["merge", str(run), "--out", str(tmp_path / "m"), "--dtype", dtype]) == 0
    with safe_open(str(tmp_path / "m" / "model.safetensors"), "pt") as f:
        assert {str(f.get_tensor(k).dtype) for k in f.keys()} == {f"torch.{dtype}"}
    assert json.loads((tmp_path / "m" / "merge_report.json").read_text())["dtype"] == dtype


def test_drift_beyond_tolerance_fails_and_writes_nothing(bpe_models, train_run, tmp_path,
                                                         monkeypatch, capsys):
    """A merge that folds the adapter in twice (a classic scaling bug) must be caught."""
    from adapters_sft.strategies.lora import LoraStrategy

    run = train_run(bpe_models["llama"], "lora")

    def double_merge(self, model):
        for module in model.modules():
            if hasattr(module, "scaling") and isinstance(module.scaling, dict):
                module.scaling = {k: v * 2 for k, v in module.scaling.items()}
        return model.merge_and_unload()

    monkeypatch.setattr(LoraStrategy, "merge", double_merge)
    out = tmp_path / "m"
    capsys.readouterr()
    assert main(["merge", str(run), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert "merge drifted beyond the float32 tolerance" in err and len(err.splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob(".m*"))


def test_bottleneck_adapter_merge_is_refused_with_the_reason(bpe_models, train_run, tmp_path, capsys):
    run = train_run(bpe_models["llama"], "adapter")
    capsys.readouterr()
    assert main(["merge", str(run), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "non-linear layer cannot be folded" in err and "strategy 'lora'" in err
    assert not (tmp_path / "m").exists()


def test_probes_fall_back_to_built_in_prompts_when_the_data_is_gone(bpe_models, train_run,
                                                                     tiny_data, tmp_path, capsys):
    run = train_run(bpe_models["llama"], "lora")
    (run / "heldout.json").unlink()  # a run from before held-out rows were kept with it
    moved = tiny_data["eval"].with_suffix(".moved")
    tiny_data["eval"].rename(moved)
    try:
        assert main(["merge", str(run), "--out", str(tmp_path / "m")]) == 0
    finally:
        moved.rename(tiny_data["eval"])
    assert "probes: built-in prompts" in capsys.readouterr().out


@pytest.mark.parametrize("strategy", ["prompt-tuning", "p-tuning"])
def test_virtual_token_methods_refuse_merge_and_gguf_in_one_line(strategy, bpe_models, train_run,
                                                                  tmp_path, capsys):
    run = train_run(bpe_models["llama"], strategy)
    capsys.readouterr()
    for verb in (["merge", str(run), "--out", str(tmp_path / "m")],
                 ["export", str(run), "--format", "gguf", "--out", str(tmp_path / "g")]):
        assert main(verb) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert "nothing to merge" in err and "--format peft" in err
    assert not (tmp_path / "m").exists() and not (tmp_path / "g").exists()

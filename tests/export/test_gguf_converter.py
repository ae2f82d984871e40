"""Our GGUF writer against llama.cpp's own converter (convert_hf_to_gguf.py from the llama.cpp
release the tests load; `make llamacpp` puts it in .cache/llama.cpp), on tiny random models
of each architecture with a real tokenizer of its family: every key the converter writes must
be in our file with the same value, and every tensor must have the same name, shape, type
and contents. Where the two differ by design, the test says why."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import LLAMA3_ROPE, LLAMA_CPP, build_model_dir, make_spm_tokenizer, real_vocab_tokenizer

pytestmark = [
    pytest.mark.skipif(not (LLAMA_CPP / "convert_hf_to_gguf.py").is_file(),
                       reason=f"llama.cpp's converter is not in {LLAMA_CPP} (make llamacpp fetches it "
                              "from the llama-cpp-python release)"),
    pytest.mark.skipif(importlib.util.find_spec("sentencepiece") is None,
                       reason="llama.cpp's converter needs sentencepiece: pip install 'adapters-sft[llamacpp]'")]

# Descriptive keys the converter derives from the folder's name and the parameter count.
DESCRIPTIVE = {"general.name", "general.basename", "general.size_label", "general.type", "general.version",
               "general.finetune"}
# Keys we write that the converter may leave out, each with the value llama.cpp's loader assumes
# when it is absent (src/llama-model.cpp, src/llama-vocab.cpp): the rotary width (the head
# width), the vocabulary size (the token count), no BOS/EOS unless a tokenizer adds them.
IMPLIED = ("rope.dimension_count", "vocab_size", "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token")
# Keys the converter may write that we leave to the loader's default, with that default.
DEFAULTS = {"tokenizer.ggml.add_sep_token": False}


def _read(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    import gguf
    import numpy as np

    reader = gguf.GGUFReader(str(path))
    keys = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    tensors = {t.name: (tuple(t.shape), t.tensor_type.name, np.array(t.data)) for t in reader.tensors}
    return keys, tensors


def _convert(model_dir: Path, out: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(LLAMA_CPP / "gguf-py")}
    done = subprocess.run([sys.executable, str(LLAMA_CPP / "convert_hf_to_gguf.py"), str(model_dir),
                           "--outtype", "f32", "--outfile", str(out)], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def _ours(model_dir: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from adapters_sft.export.gguf_file import write_gguf

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    write_gguf(model, AutoTokenizer.from_pretrained(model_dir), out, "f32", model_dir.name)


def _compare(model_dir: Path, tmp_path: Path, skip: tuple[str, ...] = ()) -> None:
    import numpy as np

    _convert(model_dir, tmp_path / "theirs.gguf")
    _ours(model_dir, tmp_path / "ours.gguf")
    (theirs, their_tensors), (ours, our_tensors) = _read(tmp_path / "theirs.gguf"), _read(tmp_path / "ours.gguf")
    arch = ours["general.architecture"]
    for key, value in theirs.items():
        if key in DESCRIPTIVE or key.startswith(skip):
            continue
        if key in (f"{arch}.attention.key_length", f"{arch}.attention.value_length") and key not in ours:
            assert value == theirs[f"{arch}.embedding_length"] // theirs[f"{arch}.attention.head_count"], key
            continue  # the converter writes the head width even where it is the loader's default
        if key not in ours and DEFAULTS.get(key, object()) == value:
            continue
        assert key in ours, f"llama.cpp's converter writes {key} = {str(value)[:80]}; we do not"
        assert ours[key] == value, (key, str(ours[key])[:200], str(value)[:200])
    extra = {k for k in ours if k not in theirs and not k.startswith(skip) and k not in DESCRIPTIVE}
    assert all(k.endswith(IMPLIED) for k in extra), extra
    assert sorted(our_tensors) == sorted(their_tensors)
    for name, (shape, kind, data) in their_tensors.items():
        assert our_tensors[name][:2] == (shape, kind), name
        assert np.array_equal(our_tensors[name][2], data), name


@pytest.fixture(scope="module")
def real_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if not (LLAMA_CPP / "models" / "ggml-vocab-llama-bpe.gguf").is_file():
        pytest.skip(f"llama.cpp's reference vocabularies are not in {LLAMA_CPP / 'models'}")
    root = tmp_path_factory.mktemp("real-vocab-models")
    llama3 = real_vocab_tokenizer("llama-bpe")
    qwen = real_vocab_tokenizer("qwen2")
    return {"llama3.1": build_model_dir(root, "llama", llama3, tie=False, rope_parameters=LLAMA3_ROPE),
            "qwen2": build_model_dir(root, "qwen2", qwen), "qwen3": build_model_dir(root, "qwen3", qwen)}


@pytest.mark.parametrize("kind", ["llama3.1", "qwen2", "qwen3"])
def test_byte_level_models_match_llama_cpps_converter(kind, real_models, tmp_path):
    _compare(real_models[kind], tmp_path)


def test_sentencepiece_model_matches_llama_cpps_converter_but_for_scores(tmp_path):
    """Without a tokenizer.model the converter falls back to reading tokenizer.json with every
    score at -1000 (gguf-py's LlamaHfVocab), so llama.cpp would merge in text order rather than
    in the tokenizer's merge order; we write scores from the merges (test_gguf_sentencepiece.py),
    and pad the vocabulary to the embedding as its SentencePiece path does. The rest must match."""
    model_dir = build_model_dir(tmp_path / "m", "mistral", make_spm_tokenizer(), tie=False)
    _compare(model_dir, tmp_path, skip=("tokenizer.ggml.scores", "tokenizer.ggml.token", "tokenizer.ggml.add_space_prefix",
                                        "tokenizer.chat_template"))

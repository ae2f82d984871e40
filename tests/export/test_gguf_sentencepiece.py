"""Llama-2 / Mistral style SentencePiece tokenizers in GGUF (`tokenizer.ggml.model = llama`):
scores that keep the run tokenizer's merge order, byte tokens, the space-prefix rule; and, where
llama.cpp is installed, a LoRA run on a tiny Llama-2 / Mistral shaped model that llama.cpp
loads, tokenizes and continues exactly as transformers does."""
from __future__ import annotations

import importlib.util
import json

import pytest

from adapters_sft.export.gguf_vocab import Style, style
from tests import llamacpp_check

from .conftest import make_spm_tokenizer


def _fields(path) -> dict:
    import gguf

    reader = gguf.GGUFReader(str(path))
    out = {}
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"):
        field = reader.fields[key]
        out[key] = [bytes(field.parts[i]).decode() if key.endswith("tokens") else field.parts[i][0].item()
                    for i in field.data]
    for key in ("tokenizer.ggml.model", "tokenizer.ggml.pre"):
        field = reader.fields[key]
        out[key] = bytes(field.parts[field.data[0]]).decode()
    out["tokenizer.ggml.add_space_prefix"] = bool(reader.fields["tokenizer.ggml.add_space_prefix"].parts[-1][0])
    out["merges"] = "tokenizer.ggml.merges" in reader.fields
    return out


def _with_whitespace(tokenizer, pre_tokenizer: dict | None, normalizer: dict | None):
    from tokenizers import Tokenizer

    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    spec["pre_tokenizer"], spec["normalizer"] = pre_tokenizer, normalizer
    return type("T", (), {"backend_tokenizer": Tokenizer.from_str(json.dumps(spec))})()


def test_sentencepiece_style_and_its_space_prefix_rule():
    tok = make_spm_tokenizer()
    # transformers' Metaspace "first" prefixes only the start of the input; llama.cpp cannot
    # say that, and chat prompts start with a special token, after which "first" adds nothing
    assert style(tok) == Style("llama", "default", False)
    always = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": False}
    assert style(_with_whitespace(tok, always, None)).space_prefix is True
    legacy = {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
              {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}
    assert style(_with_whitespace(tok, None, legacy)) == Style("llama", "default", True)


def test_sentencepiece_gguf_has_scores_in_merge_order_and_byte_tokens(spm_models, tmp_path):
    import gguf
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from adapters_sft.export.gguf_file import write_gguf

    model = AutoModelForCausalLM.from_pretrained(spm_models["llama"], dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(spm_models["llama"])
    write_gguf(model, tok, tmp_path / "m.gguf", "f32", "t")
    got = _fields(tmp_path / "m.gguf")
    assert (got["tokenizer.ggml.model"], got["tokenizer.ggml.pre"], got["merges"]) == ("llama", "default", False)
    assert got["tokenizer.ggml.add_space_prefix"] is False
    tokens, scores, types = got["tokenizer.ggml.tokens"], got["tokenizer.ggml.scores"], got["tokenizer.ggml.token_type"]
    score = dict(zip(tokens, scores))
    made = []  # each merged token once, in the order the run's merges first make it
    for merge in json.loads(tok.backend_tokenizer.to_str())["model"]["merges"]:
        joined = "".join(merge.split(" ", 1) if isinstance(merge, str) else merge)
        if joined not in made:
            made.append(joined)
    assert len(made) > 50 and [score[t] for t in made] == sorted((score[t] for t in made), reverse=True)
    assert len(set(score[t] for t in made)) == len(made)  # no ties for llama.cpp to break otherwise
    T = gguf.TokenType
    assert types[tok.unk_token_id] == T.UNKNOWN
    assert types[tok.bos_token_id] == types[tok.eos_token_id] == T.CONTROL
    assert [tokens[i] for i, t in enumerate(types) if t == T.BYTE] == [f"<0x{b:02X}>" for b in range(256)]
    assert types[len(tok):] == [T.UNUSED] * (len(tokens) - len(tok))  # the padded embedding rows


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                    reason="llama.cpp is not installed: pip install 'adapters-sft[llamacpp]'")
@pytest.mark.parametrize("kind", ["llama", "mistral"])
def test_sentencepiece_run_loads_tokenizes_and_continues_in_llama_cpp(kind, spm_models, train_run, tmp_path):
    from adapters_sft.cli.main import main
    from adapters_sft.export.gguf_pre_names import PROBE

    tok = make_spm_tokenizer()
    run = train_run(spm_models[kind], "lora")
    assert main(["export", str(run), "--format", "gguf", "--outtype", "f32", "--out", str(tmp_path / "g")]) == 0
    reference = llamacpp_check.reference(run, new_tokens=8)
    assert reference["texts"][0].startswith("<s>[INST]")
    # words the vocabulary does not hold whole, where the order of merges decides the tokens
    hard = [f"<s>{text}" for text in (PROBE, "reconverted todays answers: bluegreen catdogs, fivesix!",
                                      "nothing\n\n  at\tall \u00e9t\u00e9 \U0001f999")]
    gguf = tmp_path / "g" / f"{run.name}.f32.gguf"
    got = llamacpp_check.probe_run(gguf, reference, tmp_path)
    assert got["metadata"]["tokenizer.ggml.model"] == "llama"
    llamacpp_check.assert_same_as_transformers(got, reference)
    assert llamacpp_check.probe(gguf, hard, tmp_path)["tokens"] == [tok(t, add_special_tokens=False)["input_ids"]
                                                                  for t in hard]

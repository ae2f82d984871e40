"""The tokenizer as GGUF metadata, named the way llama.cpp's loader expects.

llama.cpp picks its pre-tokenizer (the regex that splits text before BPE) by the name in
`tokenizer.ggml.pre`, and refuses a name it does not know. We choose the name as llama.cpp's
own converter does: the sha256 of how the tokenizer encodes a fixed probe text, looked up in
the converter's table (gguf_pre_names.py). A tokenizer the table does not list (a tokenizer
trained for a test, or a new one) is named by its split rule instead, where that rule is
exactly one llama.cpp implements; anything else is refused with one line, never mislabelled.
"""
from __future__ import annotations

import json
from hashlib import sha256
from pathlib import Path
from typing import Any

from ..errors import UserError
from .gguf_pre_names import NAMES, PROBE

# A tokenizer.json Split regex -> the llama.cpp name whose regex is the same (llama.cpp's
# src/llama-vocab.cpp quotes each "original regex from tokenizer.json" beside its adaptation).
_SPLITS = {
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+":
        "llama-bpe",
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+":
        "qwen2",
}


def pre_tokenizer(tokenizer: Any) -> str:
    """`tokenizer.ggml.pre` for a byte-level BPE tokenizer, or a UserError saying why not."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    model = spec.get("model") or {}
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        kind = f"{model.get('type')}{' with byte fallback (SentencePiece style)' if model.get('byte_fallback') else ''}"
        raise UserError(f"--format gguf: only byte-level BPE tokenizers (GPT-2, Llama-3, Qwen2, SmolLM "
                        f"style) are written; this one is {kind}; export --format safetensors and "
                        "convert it with llama.cpp's convert_hf_to_gguf.py")
    digest = sha256(str(tokenizer.encode(PROBE)).encode()).hexdigest()
    if digest in NAMES:
        return NAMES[digest]
    pre = spec.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre]) if pre else []
    types = [s.get("type") for s in steps]
    if types == ["ByteLevel"] and steps[0].get("use_regex", True):
        return "gpt-2"  # ByteLevel's own regex is GPT-2's
    if types == ["Split", "ByteLevel"] and not steps[1].get("use_regex", True):
        name = _SPLITS.get((steps[0].get("pattern") or {}).get("Regex", ""))
        if name:
            return name
    raise UserError("--format gguf: llama.cpp does not know this tokenizer's pre-tokenizer (neither "
                    f"its probe hash {digest[:12]}... nor its split rule); export --format "
                    "safetensors and convert it with a llama.cpp that lists it")


def pre_name(path: Path) -> str | None:
    """The `tokenizer.ggml.pre` written in a GGUF file, if any."""
    import gguf

    field = gguf.GGUFReader(str(path)).fields.get("tokenizer.ggml.pre")
    return None if field is None else bytes(field.parts[field.data[0]]).decode()


def add_tokenizer(writer: Any, tokenizer: Any, vocab_size: int, pre: str) -> None:
    """Tokens by id with their types, merges, special ids, the pre-tokenizer name and the
    chat template, padded to the model's vocabulary as llama.cpp's converter pads it."""
    import gguf

    vocab = tokenizer.get_vocab()
    if len(vocab) > vocab_size:
        raise UserError(f"--format gguf: the tokenizer has {len(vocab)} tokens but the model's "
                        f"embedding only {vocab_size}; the run's tokenizer does not fit its model")
    by_id = {i: t for t, i in vocab.items()}
    added = dict(tokenizer.added_tokens_decoder)
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in by_id:  # embedding rows beyond the tokenizer, as llama.cpp pads them
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        tokens.append(by_id[i])
        if i in added:
            types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"].get("merges", [])
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    for setter, token_id in ((writer.add_bos_token_id, tokenizer.bos_token_id),
                             (writer.add_eos_token_id, tokenizer.eos_token_id),
                             (writer.add_unk_token_id, tokenizer.unk_token_id),
                             (writer.add_pad_token_id, tokenizer.pad_token_id)):
        if token_id is not None:
            setter(token_id)
    writer.add_add_bos_token(bool(getattr(tokenizer, "add_bos_token", False)))
    if tokenizer.chat_template:
        writer.add_chat_template(plain_template(tokenizer.chat_template))


def plain_template(template: str) -> str:
    """The chat template without transformers' `{% generation %}` markers, which only mark the
    trained span and are not Jinja other runtimes know."""
    import re

    return re.sub(r"{%-?\s*(end)?generation\s*-?%}", "", template)

"""The tokenizer as GGUF metadata, named and shaped the way llama.cpp's loader expects.

Two tokenizer families are written, each as llama.cpp's converter writes it:

  * byte-level BPE (GPT-2, Llama-3, Qwen2, SmolLM): `tokenizer.ggml.model = gpt2`, merges, and
    `tokenizer.ggml.pre`, the name llama.cpp picks its pre-tokenizer (the regex that splits text
    before BPE) by; it refuses a name it does not know. We choose the name as the converter
    does: the sha256 of how the tokenizer encodes a fixed probe text, looked up in the
    converter's table (gguf_pre_names.py). A tokenizer the table does not list is named by its
    split rule instead, where that rule is exactly one llama.cpp implements; anything else is
    refused with one line, never mislabelled.
  * SentencePiece BPE with byte fallback (Llama-2, Mistral): `tokenizer.ggml.model = llama`,
    with a score per token instead of merges. llama.cpp's SentencePiece tokenizer merges the
    adjacent pair whose joined token scores highest, so a token scores minus the rank of the
    first merge that makes it: the run tokenizer's merge order, kept exactly.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any

from ..errors import UserError
from .gguf_pre_names import NAMES, PROBE

SPACE = "\u2581"  # SentencePiece's visible space

# A tokenizer.json Split regex -> the llama.cpp name whose regex is the same (llama.cpp's
# src/llama-vocab.cpp quotes each "original regex from tokenizer.json" beside its adaptation).
_SPLITS = {
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+":
        "llama-bpe",
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+":
        "qwen2",
}


@dataclass(frozen=True)
class Style:
    """How llama.cpp is to tokenize: `tokenizer.ggml.model`, `.pre` and `.add_space_prefix`."""
    model: str  # "gpt2" (byte-level BPE) or "llama" (SentencePiece)
    pre: str
    space_prefix: bool = False


def style(tokenizer: Any) -> Style:
    """The GGUF tokenizer style of a run's tokenizer, or a UserError saying why there is none."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    model = spec.get("model") or {}
    if model.get("type") == "BPE" and model.get("byte_fallback"):
        prefix = _sentencepiece_prefix(spec)
        if prefix is not None:
            return Style("llama", "default", prefix)
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        kind = f"{model.get('type')}{' with byte fallback' if model.get('byte_fallback') else ''}"
        raise UserError(f"--format gguf: only byte-level BPE (GPT-2, Llama-3, Qwen2, SmolLM style) "
                        "and SentencePiece BPE (Llama-2, Mistral style) tokenizers are written; this "
                        f"one is {kind} with its own whitespace rules; export --format safetensors and "
                        "convert it with llama.cpp's convert_hf_to_gguf.py")
    return Style("gpt2", _bpe_pre(tokenizer, spec))


def _sentencepiece_prefix(spec: dict[str, Any]) -> bool | None:
    """`add_space_prefix` for a tokenizer that handles spaces as SentencePiece does (spaces
    become SPACE, nothing splits the text), or None if it handles them some other way.

    llama.cpp can prefix a space to every stretch of text after a special token, or to none.
    transformers' Metaspace "first" (its default for Llama-2 and Mistral) prefixes only the
    text at the very start of the input; we write "none", which is exact wherever the text
    starts with a special token (every chat prompt: BOS, [INST] or <|im_start|> comes first)
    and differs by one leading SPACE on a raw prompt that starts with text."""
    pre, norm = spec.get("pre_tokenizer"), spec.get("normalizer")
    if pre and pre.get("type") == "Metaspace" and norm is None:
        if pre.get("replacement") != SPACE or pre.get("split"):
            return None
        return pre.get("prepend_scheme", "always") == "always"
    steps = (norm or {}).get("normalizers", [norm] if norm else [])
    replace = {"type": "Replace", "pattern": {"String": " "}, "content": SPACE}
    if pre is None and steps and steps[-1] == replace:  # transformers' "legacy" Llama-2 layout
        head = steps[:-1]
        if head == [{"type": "Prepend", "prepend": SPACE}]:
            return True
        if not head:
            return False
    return None


def _bpe_pre(tokenizer: Any, spec: dict[str, Any]) -> str:
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


def add_tokenizer(writer: Any, tokenizer: Any, vocab_size: int, how: Style) -> None:
    """Tokens by id with their types (and scores, or merges), special ids, the pre-tokenizer
    and the chat template, padded to the model's vocabulary as llama.cpp's converter pads it."""
    import gguf

    vocab = tokenizer.get_vocab()
    if len(vocab) > vocab_size:
        raise UserError(f"--format gguf: the tokenizer has {len(vocab)} tokens but the model's "
                        f"embedding only {vocab_size}; the run's tokenizer does not fit its model")
    by_id = {i: t for t, i in vocab.items()}
    added = dict(tokenizer.added_tokens_decoder)
    merges = [m.split(" ", 1) if isinstance(m, str) else m for m in
              json.loads(tokenizer.backend_tokenizer.to_str())["model"].get("merges", [])]
    rank: dict[str, int] = {}
    for i, (left, right) in enumerate(merges):
        rank.setdefault(left + right, i)
    T = gguf.TokenType
    tokens, types, scores = [], [], []
    for i in range(vocab_size):
        token = by_id.get(i)
        if token is None:  # embedding rows beyond the tokenizer, as llama.cpp pads them
            tokens.append(f"[PAD{i}]"), types.append(T.UNUSED), scores.append(-10000.0)
            continue
        if i == tokenizer.unk_token_id and how.model == "llama":
            kind = T.UNKNOWN
        elif i in added:
            kind = T.CONTROL if added[i].special else T.USER_DEFINED
        elif how.model == "llama" and re.fullmatch(r"<0x[0-9A-F]{2}>", token):
            kind = T.BYTE
        else:
            kind = T.NORMAL
        tokens.append(token), types.append(kind), scores.append(-1.0 - rank[token] if token in rank else 0.0)
    writer.add_tokenizer_model(how.model)
    writer.add_tokenizer_pre(how.pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    if how.model == "llama":
        writer.add_token_scores(scores)
        writer.add_add_space_prefix(how.space_prefix)
    else:
        writer.add_token_merges([f"{left} {right}" for left, right in merges])
    for setter, token_id in ((writer.add_bos_token_id, tokenizer.bos_token_id),
                             (writer.add_eos_token_id, tokenizer.eos_token_id),
                             (writer.add_unk_token_id, tokenizer.unk_token_id),
                             (writer.add_pad_token_id, tokenizer.pad_token_id)):
        if token_id is not None:
            setter(token_id)
    # what the run's tokenizer adds around a text, so llama.cpp adds the same
    ids = tokenizer("a")["input_ids"]
    writer.add_add_bos_token(tokenizer.bos_token_id is not None and ids[:1] == [tokenizer.bos_token_id])
    writer.add_add_eos_token(tokenizer.eos_token_id is not None and ids[-1:] == [tokenizer.eos_token_id])
    if tokenizer.chat_template:
        writer.add_chat_template(plain_template(tokenizer.chat_template))


def plain_template(template: str) -> str:
    """The chat template without transformers' `{% generation %}` markers, which only mark the
    trained span and are not Jinja other runtimes know."""
    return re.sub(r"{%-?\s*(end)?generation\s*-?%}", "", template)

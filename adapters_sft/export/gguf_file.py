"""HF model -> one GGUF file, written with the `gguf` package (no llama.cpp build).

Covers what llama.cpp's convert_hf_to_gguf.py does for the Llama family: Llama (SmolLM is one),
Mistral and Qwen2, with a byte-level BPE tokenizer (GPT-2, Llama-3, Qwen2 style). Two details
matter for correctness:

  * llama.cpp's Llama graph expects the rows of q_proj and k_proj permuted for its rotary
    layout (Qwen2 is not permuted); transformers' GGUF loader undoes the same permutation.
  * the tokenizer travels as metadata: tokens by id with their type (normal / control /
    user-defined / unused padding), merges, special ids, the pre-tokenizer's name (llama.cpp
    picks its split regex by that name) and the run's chat template.

Norms and other 1-D tensors stay float32, as llama.cpp writes them; q8_0 falls back to f16 for
a tensor whose rows are not a multiple of its 32-value block.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..errors import UserError

# model_type -> (gguf architecture, permute q/k rows)
ARCHITECTURES = {"llama": ("LLAMA", True), "mistral": ("LLAMA", True), "qwen2": ("QWEN2", False)}
OUTTYPES = ("f32", "f16", "bf16", "q8_0")


def check_exportable(config: Any, tokenizer: Any) -> str:
    """Raise a UserError for what this writer cannot express; returns the pre-tokenizer name."""
    kind = config.model_type
    if kind not in ARCHITECTURES:
        raise UserError(f"--format gguf: architecture '{kind}' is not supported (supported: "
                        f"{', '.join(ARCHITECTURES)}); export --format safetensors and convert "
                        "it with llama.cpp's convert_hf_to_gguf.py")
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    if rope.get("rope_type", rope.get("type", "default")) not in ("default", None):
        raise UserError(f"--format gguf: rope scaling '{rope.get('rope_type')}' is not written by "
                        "this exporter; export --format safetensors and convert it with llama.cpp")
    return _pre_tokenizer(tokenizer)


def _pre_tokenizer(tokenizer: Any) -> str:
    """The llama.cpp pre-tokenizer name for a byte-level BPE tokenizer, from tokenizer.json."""
    from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_PRE_TOKENIZER_SPLITS

    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    model, pre = spec.get("model") or {}, spec.get("pre_tokenizer") or {}
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        raise UserError("--format gguf: only byte-level BPE tokenizers (GPT-2, Llama-3, Qwen2, "
                        f"SmolLM style) are written; this one is {model.get('type')}"
                        f"{' with byte fallback (SentencePiece style)' if model.get('byte_fallback') else ''}; "
                        "export --format safetensors and convert it with llama.cpp")
    steps = pre.get("pretokenizers", [pre]) if pre else []
    if [s.get("type") for s in steps] == ["ByteLevel"] and steps[0].get("use_regex", True):
        return "gpt2"
    if [s.get("type") for s in steps] == ["Split", "ByteLevel"]:
        regex = steps[0].get("pattern", {}).get("Regex")
        for name, split in GGUF_PRE_TOKENIZER_SPLITS.items():
            if split == regex:
                return name
    raise UserError("--format gguf: the tokenizer's pre-tokenizer is not one llama.cpp knows by "
                    "name (GPT-2, Llama-3 or Qwen2 style); export --format safetensors and "
                    "convert it with llama.cpp")


def write_gguf(model: Any, tokenizer: Any, path: Path, outtype: str, name: str) -> None:
    """Write `model` (float32, on CPU) and `tokenizer` to `path` as GGUF."""
    import gguf

    config = model.config
    pre = check_exportable(config, tokenizer)
    arch_name, permute = ARCHITECTURES[config.model_type]
    arch = getattr(gguf.MODEL_ARCH, arch_name)
    writer = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[arch])
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    rope = getattr(config, "rope_parameters", None) or {}
    # llama.cpp and transformers both read the name; transformers maps llama + "mistral" back
    writer.add_name(f"{config.model_type} {name}")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_freq_base(float(rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_rope_dimension_count(head_dim)
    if head_dim != config.hidden_size // heads:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_file_type({"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                          "bf16": gguf.LlamaFileType.MOSTLY_BF16,
                          "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[outtype])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    _add_tokenizer(writer, tokenizer, config.vocab_size, pre)

    names = gguf.get_tensor_name_map(arch, config.num_hidden_layers)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    for hf_name, tensor in model.state_dict().items():
        if tied and hf_name == "lm_head.weight":
            continue  # a missing output.weight is how GGUF says "tied"
        new = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if new is None:
            raise UserError(f"--format gguf: tensor '{hf_name}' has no GGUF name for "
                            f"{config.model_type}; export --format safetensors instead")
        data = tensor.detach().float().cpu().numpy()
        if permute and hf_name.endswith("q_proj.weight"):
            data = _permute(data, heads, heads)
        elif permute and hf_name.endswith("k_proj.weight"):
            data = _permute(data, heads, kv_heads)
        array, raw = _encode(data, outtype)
        writer.add_tensor(new, array, raw_dtype=raw)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _permute(weights: Any, n_head: int, n_head_kv: int) -> Any:
    """llama.cpp's `LlamaModel.permute`: interleave each head's two rotary halves."""
    if n_head != n_head_kv:
        n_head = n_head_kv
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def _encode(data: Any, outtype: str) -> tuple[Any, Any]:
    import gguf

    q = gguf.GGMLQuantizationType
    if data.ndim == 1 or outtype == "f32":
        return data, q.F32
    if outtype == "q8_0" and data.shape[-1] % 32 == 0:
        return gguf.quants.quantize(data, q.Q8_0), q.Q8_0
    if outtype == "bf16":
        return gguf.quants.quantize(data, q.BF16), q.BF16
    return data.astype("float16"), q.F16


def _add_tokenizer(writer: Any, tokenizer: Any, vocab_size: int, pre: str) -> None:
    import gguf

    vocab = tokenizer.get_vocab()
    if len(vocab) > vocab_size:
        raise UserError(f"--format gguf: the tokenizer has {len(vocab)} tokens but the model's "
                        f"embedding only {vocab_size}; the run's tokenizer does not fit its model")
    by_id = {i: t for t, i in vocab.items()}
    added = {i: tok for i, tok in tokenizer.added_tokens_decoder.items()}
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
    return re.sub(r"{%-?\s*(end)?generation\s*-?%}", "", template)

"""HF model -> one GGUF file, written with the `gguf` package (no llama.cpp build).

Covers what llama.cpp's convert_hf_to_gguf.py does for the Llama family: Llama (SmolLM is one),
Mistral, Qwen2 and Qwen3, with a byte-level BPE (GPT-2, Llama-3, Qwen2) or SentencePiece BPE
(Llama-2, Mistral) tokenizer. Two details matter for correctness:

  * llama.cpp's Llama graph expects the rows of q_proj and k_proj permuted for its rotary
    layout (Qwen is not permuted); transformers' GGUF loader undoes the same permutation.
  * the tokenizer travels as metadata (gguf_vocab.py): tokens by id with their type, merges or
    scores, special ids, the pre-tokenizer's name as llama.cpp names it, and the chat template.

Norms and other 1-D tensors stay float32, as llama.cpp writes them; q8_0 falls back to f16 for
a tensor whose rows are not a multiple of its 32-value block.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import UserError
from .gguf_vocab import Style, add_tokenizer, style

# model_type -> (gguf architecture, permute q/k rows)
ARCHITECTURES = {"llama": ("LLAMA", True), "mistral": ("LLAMA", True), "qwen2": ("QWEN2", False),
                 "qwen3": ("QWEN3", False)}
OUTTYPES = ("f32", "f16", "bf16", "q8_0")


def check_exportable(config: Any, tokenizer: Any) -> Style:
    """Raise a UserError for what this writer cannot express; returns the tokenizer's style."""
    kind = config.model_type
    if kind not in ARCHITECTURES:
        raise UserError(f"--format gguf: architecture '{kind}' is not supported (supported: "
                        f"{', '.join(ARCHITECTURES)}); export --format safetensors and convert "
                        "it with llama.cpp's convert_hf_to_gguf.py")
    kind = rope_type(config)
    if kind not in ("default", "llama3"):
        raise UserError(f"--format gguf: rope scaling '{kind}' is not written by this exporter "
                        "(default and llama3 are); export --format safetensors and convert it "
                        "with llama.cpp")
    return style(tokenizer)


def _rope(config: Any) -> dict[str, Any]:
    """The rope settings: transformers 5's `rope_parameters`, or an older `rope_scaling`."""
    return getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}


def rope_type(config: Any) -> str:
    rope = _rope(config)
    return rope.get("rope_type", rope.get("type")) or "default"


def llama3_rope_factors(config: Any) -> Any:
    """Llama-3.1's rope scaling as llama.cpp applies it: one factor per rotary frequency, in a
    `rope_freqs` tensor. The same formula as llama.cpp's converter (conversion/llama.py,
    `generate_extra_tensors`) and transformers' `_compute_llama3_parameters`."""
    import math

    import numpy as np

    rope = _rope(config)
    base = float(rope.get("rope_theta", getattr(config, "rope_theta", 10000.0)))
    dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    factor = rope.get("factor", 8.0)
    low, high = rope.get("low_freq_factor", 1.0), rope.get("high_freq_factor", 4.0)
    old_context = rope.get("original_max_position_embeddings", 8192)
    low_wavelen, high_wavelen = old_context / low, old_context / high
    factors = []
    for freq in 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float32) / dim)):
        wavelen = 2 * math.pi / freq
        if wavelen < high_wavelen:
            factors.append(1.0)
        elif wavelen > low_wavelen:
            factors.append(factor)
        else:
            smooth = (old_context / wavelen - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(factors, dtype=np.float32)


def write_gguf(model: Any, tokenizer: Any, path: Path, outtype: str, name: str,
               base: Any = None, description: str = "") -> None:
    """Write `model` (float32, on CPU) and `tokenizer` to `path` as GGUF; `base` (card.Base)
    and `description` go into GGUF's general.* metadata, as llama.cpp's converter writes them."""
    import gguf

    config = model.config
    how = check_exportable(config, tokenizer)
    arch_name, permute = ARCHITECTURES[config.model_type]
    arch = getattr(gguf.MODEL_ARCH, arch_name)
    writer = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[arch])
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    rope = _rope(config)
    # llama.cpp and transformers both read the name; transformers maps llama + "mistral" back
    writer.add_name(f"{config.model_type} {name}")
    if description:
        writer.add_description(description)
    if base is not None:
        writer.add_base_model_count(1)
        writer.add_base_model_name(0, base.ref)
        if base.hub_id:
            writer.add_base_model_repo_url(0, f"https://huggingface.co/{base.hub_id}")
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
    add_tokenizer(writer, tokenizer, config.vocab_size, how)

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
    if rope_type(config) == "llama3":
        writer.add_tensor(gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight",
                          llama3_rope_factors(config), raw_dtype=gguf.GGMLQuantizationType.F32)
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

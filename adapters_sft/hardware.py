"""Facts about this machine that model loading and data preparation both need (a CUDA GPU,
the attention implementation), in a module that imports nothing of ours."""
from __future__ import annotations


def cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def attention() -> str | None:
    """The attention implementation models load with: FlashAttention 2 on a CUDA GPU where the
    flash_attn package is installed (it attends within each packed sequence, data/batching.py);
    otherwise None, transformers' own choice (SDPA where the model supports it, else eager)."""
    import importlib.util

    return "flash_attention_2" if cuda() and importlib.util.find_spec("flash_attn") else None

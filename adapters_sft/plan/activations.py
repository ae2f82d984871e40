"""What the forward pass keeps for the backward pass, counted without any memory.

One decoder layer of the meta model (static.py: strategy and adapters applied) runs forward on
`meta` tensors of the real batch shape, and every tensor autograd saves for the backward pass is
counted once (views count as their base; parameters are not activations). So what a layer keeps
follows the architecture, the strategy and the dtype as transformers, PEFT and PyTorch build
them, not a formula of ours. Two things a meta run cannot show are modelled:

  attention   PyTorch picks no fused kernel for meta tensors and would show the math path's
              (tokens x tokens) scores. The fused kernels used on GPUs (FlashAttention, SDPA's
              efficient and flash paths) and on CPUs (SDPA flash) keep q, k, v, the output and
              an fp32 log-sum-exp per head and token, which is what we count.
  4/8-bit     a bitsandbytes layer computes in the compute dtype and returns the input's
              dtype; its 4-bit matmul keeps nothing of the input for the backward pass, its
              8-bit one keeps the input (on the autograd context, where no saved-tensor hook
              sees it: bitsandbytes 0.50's MatMul4Bit, MatMul8bitLt and MatMul8bitFp).

With gradient checkpointing, a layer keeps only its input and one layer at a time is run
again during the backward pass. The loss head is TRL's chunked log-prob (no full logits); its
backward pass runs first, while everything the layers keep is still alive.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

_TRL_TOKEN_TILE = 4096    # trl.kernels.chunked_logprob.TOKEN_CHUNK_SIZE
_TRL_VOCAB_TILE = 32768   # trl.trainer.utils._CHUNKED_LOGPROB_CHUNK_SIZE


def _fused_attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any,
                     **kwargs: Any) -> tuple[Any, None]:
    """Stand-in for a fused attention kernel on meta tensors: saves what the real one saves."""
    import torch

    class Saved(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, q: Any, k: Any, v: Any) -> Any:
            b, heads, s, d = q.shape
            out = q.new_empty(b, s, heads, d).transpose(1, 2)  # kernels write (b, s, heads, d)
            lse = q.new_empty(b, heads, s, dtype=torch.float32)
            ctx.save_for_backward(q, k, v, out, lse)
            return out

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:  # never run: meta tensors only
            raise NotImplementedError

    return Saved.apply(query, key, value).transpose(1, 2), None


def _quantized_input(x: Any) -> Any:
    import torch

    class KeepInput(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, t: Any) -> Any:
            ctx.save_for_backward(t)
            return t.view_as(t)

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            raise NotImplementedError

    return KeepInput.apply(x)


def _as_bitsandbytes(module: Any, bits: int) -> list[Any]:
    """Hooks making a plain frozen linear layer behave as a bitsandbytes one for the count: the
    input cast to the compute dtype (its weight's), kept if 8-bit, the output cast back."""
    def before(m: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
        m._plan_dtype = args[0].dtype
        x = _quantized_input(args[0]) if bits == 8 else args[0]
        return (x.to(m.weight.dtype), *args[1:])

    def after(m: Any, args: tuple[Any, ...], out: Any) -> Any:
        return out.to(m._plan_dtype)

    return [module.register_forward_pre_hook(before), module.register_forward_hook(after)]


@contextlib.contextmanager
def _loha_without_coin(layer: Any) -> Iterator[None]:
    """PEFT's LoHa layers draw `torch.rand(1) > module_dropout` in training to skip the adapter,
    an `if` on a value the meta device does not hold. Traced in their not-training branch, which
    computes the same (adapter applied, no rank dropout: PEFT's defaults, module_dropout 0 and
    rank_dropout 0; with dropout the trace is an upper bound). LoKr's layers do the same, but
    their trace so differs from a real step by a few hundred numbers a layer (measured on the
    tiny test Llama): left unplanned (the NotPlanned line) until that is understood."""
    try:
        from peft.tuners.loha.layer import LoHaLayer
    except ImportError:
        yield
        return
    flipped = [m for m in layer.modules() if isinstance(m, LoHaLayer) and m.training]
    for m in flipped:
        m.training = False
    try:
        yield
    finally:
        for m in flipped:
            m.training = True


@contextlib.contextmanager
def _bool_dropout(on: bool) -> Iterator[None]:
    """Dropout that keeps a one-byte mask, as CUDA's fused kernel does."""
    import torch

    class Dropout(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: Any) -> Any:
            ctx.save_for_backward(torch.empty_like(x, dtype=torch.bool))
            return torch.empty_like(x)

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            raise NotImplementedError

    def dropout(x: Any, p: float = 0.5, training: bool = True, inplace: bool = False) -> Any:
        return Dropout.apply(x) if training and p > 0 else x

    original = torch.nn.functional.dropout
    if on:
        torch.nn.functional.dropout = dropout
    try:
        yield
    finally:
        torch.nn.functional.dropout = original


def hidden_dtype(model: Any) -> Any:
    """The dtype of the hidden states between layers: the embeddings' (fp32 on a 4/8-bit model
    whose preparation casts them up, qlora's `upcast_base`, whatever the compute dtype)."""
    return model.get_input_embeddings().weight.dtype


class Counter:
    """Unique bytes autograd saves inside the block, parameters excluded."""

    def __init__(self, params: set[int]) -> None:
        self.params = params
        self.seen: dict[int, int] = {}
        self.keep: list[Any] = []  # holds the tensors so their ids stay unique

    def pack(self, t: Any) -> Any:
        base = t if t._base is None else t._base
        if id(t) not in self.params and id(base) not in self.params:
            self.seen[id(base)] = base.untyped_storage().nbytes()
            self.keep.append(base)
        return t

    @property
    def total(self) -> int:
        return sum(self.seen.values())


def _rotary(model: Any) -> Any:
    """The model's rotary embedding module (or None), looked up once per model."""
    if not hasattr(model, "_plan_rotary"):
        model._plan_rotary = next((m for n, m in model.named_modules() if n.endswith("rotary_emb")), None)
    return model._plan_rotary


def layer_bytes(model: Any, layer: Any, batch: int, length: int, input_grad: bool,
                quantized: set[int], bits: int | None, cuda: bool, mlp_only: bool = False) -> int:
    """Bytes one decoder layer saves for backward on a (batch, length) batch; `quantized` holds
    the ids of the weights bitsandbytes stores in 4 or 8 bits. `cuda`: dropout keeps a one-byte
    mask, as CUDA's fused dropout does (on a CPU, a mask in the input's dtype). `mlp_only`: the
    layer's MLP alone, in one piece (what one tile of a tiled MLP keeps while it is re-run)."""
    import torch
    from transformers import AttentionInterface

    AttentionInterface.register("adapters_sft_plan", _fused_attention)
    config = model.config
    hidden = config.hidden_size
    dtype = hidden_dtype(model)
    rotary = _rotary(model)
    hooks = [h for m in layer.modules() if id(m._parameters.get("weight")) in quantized
             for h in _as_bitsandbytes(m, bits)]
    old = config._attn_implementation
    config._attn_implementation = "adapters_sft_plan"
    counter = Counter({id(p) for p in model.parameters()})
    try:
        with torch.device("meta"):
            x = torch.empty(batch, length, hidden, dtype=dtype, requires_grad=input_grad)
            positions = torch.arange(length)[None]  # shared by the batch, as in training
            kwargs: dict[str, Any] = {"attention_mask": None, "position_ids": positions}
            if rotary is not None:
                kwargs["position_embeddings"] = rotary(x, positions)
            with torch.autograd.graph.saved_tensors_hooks(counter.pack, lambda t: t), \
                    _bool_dropout(cuda), _loha_without_coin(layer):
                if mlp_only:
                    getattr(layer.mlp, "_untiled_forward", layer.mlp)(x)
                else:
                    layer(x, **kwargs)
    finally:
        config._attn_implementation = old
        for h in hooks:
            h.remove()
    return counter.total


def decoder_layers(model: Any) -> Any:
    import torch

    count = model.config.num_hidden_layers
    for _, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == count:
            return module
    return None


def activation_bytes(model: Any, batch: int, length: int, checkpointing: bool,
                     quantized: set[int], bits: int | None, peft: bool,
                     cuda: bool, mlp_tile: int | None = None) -> tuple[int, int]:
    """(bytes the decoder layers keep for the backward pass, bytes one layer keeps when run in
    full). With checkpointing the first is the layers' inputs; each layer is then re-run, one
    at a time, during the backward pass. `mlp_tile`: the MLPs run in tiles of that many tokens
    (tiled_mlp.py: the layer keeps the MLP's input; re-running one tile keeps that tile's share)."""
    layers = decoder_layers(model)
    grad_below = any(p.requires_grad for p in model.get_input_embeddings().parameters())
    # PEFT with checkpointing makes the embeddings' output require grad (TRL does)
    grad_below = grad_below or (peft and checkpointing)
    total = largest = 0
    cache: dict[tuple[Any, ...], tuple[int, int]] = {}
    for layer in layers:
        trains = any(p.requires_grad for p in layer.parameters())
        if not (trains or grad_below):
            continue  # nothing below or inside needs a gradient: nothing is kept
        key = (tuple(p.requires_grad for p in layer.parameters()), grad_below)
        if key not in cache:
            saved = layer_bytes(model, layer, batch, length, grad_below, quantized, bits, cuda)
            tile = 0  # while the layer's backward runs, one MLP tile is re-run at a time
            if mlp_tile is not None and batch * length > mlp_tile:
                tile = layer_bytes(model, layer, 1, mlp_tile, grad_below, quantized, bits, cuda,
                                   mlp_only=True)
            cache[key] = saved, tile
        one, tile = cache[key]
        largest = max(largest, one + tile)
        x_bytes = batch * length * model.config.hidden_size * hidden_dtype(model).itemsize
        total += x_bytes if checkpointing else one
        grad_below = True
    return total, largest


def loss_head_bytes(model: Any, batch: int, length: int, dtype_size: int, cuda: bool) -> int:
    """Peak bytes of TRL's chunked log-prob head during its backward pass (which runs first,
    while every activation is still kept): its tile buffer, the hidden states it keeps, fp32
    per-token statistics, the fp32 gradient of the hidden states, and an fp32 gradient of the
    head's weight when the head trains.

    The buffer is (up to 4096 tokens) x 32768 in the compute dtype whatever the vocabulary:
    autocast's on a GPU, the hidden states' own on a CPU (`dtype_size` is the one that applies).
    TRL's Triton kernels (CUDA) work inside it (read from its code, not measured here); its
    torch fallback (CPU) also holds about 7.25 fp32 temporaries of a tile's used part (tokens x
    up to 32768 vocabulary entries; measured with benchmarks/plan_check.py's tracker)."""
    head = model.get_output_embeddings()
    vocab, hidden = head.weight.shape
    tokens = batch * length
    rows = min(tokens, _TRL_TOKEN_TILE)
    buffer = rows * _TRL_VOCAB_TILE * dtype_size
    temporaries = 0 if cuda else int(7.25 * rows * min(vocab, _TRL_VOCAB_TILE) * 4)
    kept = tokens * hidden * dtype_size + tokens * 4 * 6  # hidden states, per-token fp32 statistics
    grad_hidden = tokens * hidden * 4
    grad_head = vocab * hidden * 4 if head.weight.requires_grad else 0
    return buffer + temporaries + kept + grad_hidden + grad_head

"""`training.mlp_tile_tokens`: each decoder layer's MLP computed in tiles of that many tokens.

A Llama-style MLP keeps three (tokens x intermediate) tensors for its backward pass (gate, up,
and the activation's input), 3.5 times the hidden size each on Llama-3.1-8B. With gradient
checkpointing and activation offloading, the layer re-run during the backward pass is what
bounds the longest row, and its MLP is most of it. Every token's MLP output depends on that
token alone, so the MLP can run tile by tile along the tokens: the forward pass keeps only the
MLP's input, and the backward pass recomputes one tile at a time, sending its gradient through
(the same idea as the chunked loss head TRL already uses, and as DeepSpeed's and Unsloth's
tiled MLPs; none of our dependencies ships one).

What trains inside the MLP (LoRA, or the MLP itself) gets its gradients from the per-tile
backward, summed over the tiles and handed back to autograd as this function's own results, so
they reach `.grad` once a step, through the same hooks as any other gradient (DDP's all-reduce). Random draws (LoRA dropout) are replayed:
each tile's RNG state is kept in the forward pass and restored for its recomputation, so the
recomputed tile is the one the forward pass computed. Rows no longer than a tile, and passes
without grad (evaluation, generation), run the MLP as it is.
"""
from __future__ import annotations

import functools
from typing import Any

from .errors import UserError


def _rng_states(device: Any) -> tuple[Any, Any]:
    import torch

    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def _set_rng_states(states: tuple[Any, Any], device: Any) -> None:
    import torch

    torch.set_rng_state(states[0])
    if states[1] is not None:
        torch.cuda.set_rng_state(states[1], device)


def _function() -> type:
    import torch

    class TiledMLP(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, mlp: Any, tile: int, x: Any, *trainable: Any) -> Any:
            # mlp: the MLP's own forward; trainable: its parameters that train, inputs of this
            # function so that their gradients leave it as the backward pass's results
            ctx.mlp, ctx.tile, ctx.rng, ctx.trainable = mlp, tile, [], trainable
            ctx.save_for_backward(x)
            flat = x.reshape(-1, x.shape[-1])
            outs = []
            with torch.no_grad():
                for part in flat.split(tile):
                    ctx.rng.append(_rng_states(x.device))
                    outs.append(mlp(part))
            return torch.cat(outs).reshape(*x.shape[:-1], outs[0].shape[-1])

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            (x,) = ctx.saved_tensors
            flat = x.reshape(-1, x.shape[-1])
            grads = grad.reshape(-1, grad.shape[-1])
            wants_x = ctx.needs_input_grad[2]
            x_grad = torch.empty_like(flat) if wants_x else None
            # summed over the tiles and returned once, as any autograd function's are: DDP's
            # and FSDP's gradient hooks see each parameter's gradient arrive once a step
            param_grads: list[Any] = [None] * len(ctx.trainable)
            devices = [x.device.index or 0] if x.device.type == "cuda" else []
            start = 0
            with torch.random.fork_rng(devices=devices, enabled=True):
                for part, g, states in zip(flat.split(ctx.tile), grads.split(ctx.tile), ctx.rng):
                    _set_rng_states(states, x.device)
                    part = part.detach().requires_grad_(wants_x)
                    with torch.enable_grad():
                        out = ctx.mlp(part)
                    inputs = [part] if wants_x else []
                    found = torch.autograd.grad(out, [*inputs, *ctx.trainable], g, allow_unused=True)
                    if wants_x:
                        x_grad[start:start + len(part)] = found[0]
                    for i, pg in enumerate(found[len(inputs):]):
                        if pg is not None:
                            param_grads[i] = pg if param_grads[i] is None else param_grads[i] + pg
                    start += len(part)
            x_grad = None if x_grad is None else x_grad.reshape(x.shape)
            return (None, None, x_grad, *param_grads)

    return TiledMLP


@functools.cache
def tiled_function() -> type:
    return _function()


def _tiled_forward(forward: Any, mlp: Any, tile: int, x: Any, *args: Any, **kwargs: Any) -> Any:
    import torch

    tokens = x.numel() // x.shape[-1]
    if args or kwargs or tokens <= tile or not torch.is_grad_enabled():
        return forward(x, *args, **kwargs)
    trainable = [p for p in mlp.parameters() if p.requires_grad]
    return tiled_function().apply(forward, tile, x, *trainable)


def mlps(model: Any) -> list[Any]:
    """The MLP module of every decoder layer (`layer.mlp`, as Llama, Qwen, Mistral, Gemma name it)."""
    import torch

    from .layers import blocks

    return [block.mlp for block in blocks(model) if isinstance(getattr(block, "mlp", None), torch.nn.Module)]


def apply(model: Any, tile: int | None, where: str = "training.mlp_tile_tokens: ") -> int:
    """Tile every decoder layer's MLP of `model` at `tile` tokens; returns how many. None: each
    MLP in one piece again (nothing to do on a model never tiled)."""
    if tile is None:
        for mlp in mlps(model):
            if hasattr(mlp, "_untiled_forward"):
                mlp.forward = mlp._untiled_forward
        return 0
    found = mlps(model)
    if not found:
        raise UserError(f"{where}{type(model).__name__} has no decoder layers with an `mlp` module "
                        "to tile; remove training.mlp_tile_tokens")
    for mlp in found:
        if not hasattr(mlp, "_untiled_forward"):
            mlp._untiled_forward = mlp.forward
        mlp.forward = functools.partial(_tiled_forward, mlp._untiled_forward, mlp, tile)
    return len(found)

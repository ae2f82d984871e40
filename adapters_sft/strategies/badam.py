"""BAdam (Luo et al. 2024, arXiv:2404.02827): block coordinate descent with Adam, an option of
the full strategy (`strategy.badam_switch_every: N`).

One transformer block trains at a time, with Adam, for N optimizer steps; then the next block
(`badam_switch_mode`: descending from the top, as the paper, ascending, or random), and so on;
the embeddings and the LM head stay frozen (BAdam's default), a classifier's new head always
trains. Gradients and moments exist for one block only, and BAdam keeps an fp32 master copy of
that block (for half-precision models; here in float32 it is a duplicate of one block).

The block optimizer is the `badam` package's own (`BlockOptimizer`, an optional extra:
`pip install 'adapters-sft[badam]'`), wrapped around the Trainer's AdamW. We give it the blocks
from layers.anatomy (so it works beyond names containing `layers.`), and keep what an exact
resume needs that its state_dict leaves out: its step count, the block in use and, in random
mode, the order still to come.
"""
from __future__ import annotations

import os
import warnings
from typing import Any

from ..errors import UserError
from ..layers import anatomy, is_classifier, task_head

MODES = ("descending", "ascending", "random")


def check_installed() -> None:
    from ..training.low_rank import installed

    if not installed("badam"):
        raise UserError("strategy.badam_switch_every: BAdam needs the badam package; "
                        "pip install 'adapters-sft[badam]'")


def prefixes(model: Any) -> list[list[str]]:
    """One prefix per transformer block (e.g. 'model.layers.3.'), bottom first."""
    out = []
    for block in anatomy(model).blocks:
        common = os.path.commonprefix([name for name, _ in block])
        out.append([common[:common.rfind(".") + 1]])
    return out


def first_block(blocks: int, mode: str) -> int:
    return 0 if mode == "ascending" else blocks - 1  # random: drawn when training starts


class Badam:
    """The block optimizer of one run: prepared with the model, built with the Trainer."""

    def __init__(self, every: int, mode: str) -> None:
        self.every, self.mode = every, mode
        self.optimizer: Any = None
        self.pending: dict[str, Any] | None = None
        self.lrs: list[float] = []  # the groups' rates when the checkpoint resumed from was written

    def prepare(self, model: Any) -> None:
        """Only the starting block (and a classifier's head) requires grad, so the plan counts
        one block; the block optimizer sets the trainable block itself from then on."""
        parts = anatomy(model)
        self.blocks = [p for block in parts.blocks for _, p in block]
        for p in model.parameters():
            p.requires_grad_(False)
        for _, p in parts.blocks[first_block(len(parts.blocks), self.mode)]:
            p.requires_grad_(True)
        head = task_head(model) if is_classifier(model) else []
        self.always = [name for name, _ in head]
        for _, p in head:
            p.requires_grad_(True)

    def install(self, trainer: Any) -> None:
        """Wrap whatever optimizer the Trainer builds in BAdam's BlockOptimizer."""
        from badam import BlockOptimizer

        build, badam = trainer.create_optimizer, self

        def create_optimizer(model: Any = None) -> Any:
            if not isinstance(trainer.optimizer, BlockOptimizer):
                base = build(model)
                net = trainer.model
                start = first_block(len(prefixes(net)), badam.mode) if badam.mode != "random" else None
                with warnings.catch_warnings():  # fp32 weights: "expects fp16/bf16" (a duplicate
                    warnings.simplefilter("ignore")  # of one block, here on the CPU)
                    optimizer = BlockOptimizer(base, list(net.named_parameters()), prefixes(net),
                                               switch_block_every=badam.every, start_block=start,
                                               switch_mode=badam.mode, active_modules=badam.always,
                                               verbose=0)
                badam.optimizer = optimizer
                optimizer.load_state_dict = lambda state: badam.load(state)
                if badam.pending is not None:
                    badam.resume(badam.pending)
                trainer.optimizer = optimizer
            return trainer.optimizer

        trainer.create_optimizer = create_optimizer

    def load(self, state: dict[str, Any]) -> None:
        """The checkpoint's optimizer state (the Trainer calls this on resume). BlockOptimizer
        hands it to its base optimizer, whose load makes new parameter groups, and keeps its
        own old ones, which the scheduler sets and BAdam copies the learning rate from: the
        first step after a resume would run at the initial rate. Both share the new groups, at
        the rates the scheduler had set when the checkpoint was written."""
        opt = self.optimizer
        opt.base_optimizer.load_state_dict(state)
        opt.param_groups = opt.base_optimizer.param_groups
        for group, lr in zip(opt.param_groups, self.lrs):  # the scheduler's, as checkpointed: the
            group["lr"] = lr  # base's were reset by the switch and never set by the scheduler

    def state(self) -> dict[str, Any]:
        import torch

        opt = self.optimizer
        if opt is None:
            return {}
        in_use = next(i for i, p in enumerate(opt.block_prefix_list) if p[0] in opt.active_param_prefixs)
        order = list(getattr(opt, "block_order", []))
        return {"badam.step": torch.tensor([opt.global_step]), "badam.block": torch.tensor([in_use]),
                "badam.next": torch.tensor([opt.current_block_idx]),
                "badam.lr": torch.tensor([g["lr"] for g in opt.param_groups], dtype=torch.float64),
                "badam.order": torch.tensor(order + [-1], dtype=torch.long)}  # -1: never empty

    def resume(self, saved: dict[str, Any]) -> None:
        """Back to the block and step of the checkpoint, before its optimizer state loads (the
        Trainer loads it into the block optimizer's current parameters)."""
        opt = self.optimizer
        if opt is None:  # restored before the Trainer builds the optimizer: applied then
            self.pending = saved
            return
        opt.current_block_idx = int(saved["badam.block"][0])
        if opt.switch_mode == "random":  # the switch pops the next block from the order
            opt.block_order = [int(i) for i in saved["badam.order"][:-1]] + [int(saved["badam.next"][0])]
        opt.switch_trainable_params(verbose=0)  # that block's parameters; the index moves on
        opt.global_step = int(saved["badam.step"][0])
        self.lrs = saved["badam.lr"].tolist()
        self.pending = None

"""`task: kto`: KTO (Ethayarajh et al., 2024, arXiv:2402.01306) with TRL's KTOTrainer, on
unpaired rows, a prompt and one answer labelled desirable or not (data/formats.py,
`unpaired-preference`), or on pairs, each split into a desirable and an undesirable row.

The loss pushes each answer's implicit reward, beta * (log pi - log pi_ref), above a
reference point for desirable answers and below it for undesirable ones; the reference point
is an estimate of the KL divergence between policy and reference, taken from the other rows
of the batch (each prompt with its neighbour's answer). Hence two rules TRL's KTOTrainer sets,
checked here before any model loads: at least 2 rows per device, and a fixed row order (TRL
samples sequentially). We shuffle the rows once with the recipe's seed, so a file sorted by
label (or pairs split into all chosen, then all rejected, as TRL does) does not train on one
label for half the run. `training.desirable_weight` and `training.undesirable_weight` balance
unequal counts (TRL warns when they are off the paper's advice).

The reference is the model training starts from, as for dpo (preference.py). Scored by TRL's
own evaluation: mean reward of the desirable and undesirable answers, their difference (the
margin) and the KL estimate; with unpaired rows there is no per-pair reward accuracy. Before
training the rewards are 0 and every row's loss is 1 - sigmoid(0) = 0.5. Also the share of
greedy answers that equal a desirable answer.
"""
from __future__ import annotations

import random
from typing import Any

from ..errors import UserError
from .preference import PreferenceTask


class KtoTask(PreferenceTask):
    name = "kto"
    summary = "preference tuning (TRL's KTOTrainer) on answers labelled desirable or not, or on pairs"
    data_kinds = ("unpaired-preference", "preference")
    uses_reference = True
    trained_as = "unpaired rows, each answer desirable or not"

    def trainer_class(self) -> type:
        from trl import KTOTrainer

        return KTOTrainer

    def config_class(self) -> type:
        from trl import KTOConfig

        return KTOConfig

    def arrange(self, rows: list[dict[str, Any]], recipe: Any, args: Any,
                key: str) -> tuple[list[dict[str, Any]], str]:
        """Pairs unpaired (chosen desirable, rejected undesirable), shuffled once with the seed."""
        if args.loss_type != "apo_zero_unpaired" and args.per_device_train_batch_size < 2:
            key = "training.per_device_train_batch_size"
            raise UserError(f"{recipe.where(key)}{key}: KTO estimates its reference point from the other "
                            "rows of a batch, so it needs at least 2 per device (got 1); raise it, or set "
                            "training.loss_type=apo_zero_unpaired, which needs no estimate")
        paired = bool(rows) and "chosen" in rows[0]
        if paired:
            rows = [{"prompt": r["prompt"], "completion": r[side], "label": side == "chosen"}
                    for r in rows for side in ("chosen", "rejected")]
        desirable = sum(r["label"] for r in rows)
        if desirable in (0, len(rows)):
            at = recipe.where(key) if key.startswith("data.") else ""
            raise UserError(f"{at}{key}: every row is labelled "
                            f"{'desirable' if desirable else 'undesirable'}; KTO learns from both kinds, "
                            "so give rows with label true and rows with label false")
        rows = list(rows)
        random.Random(recipe.seed).shuffle(rows)
        source = f"; from {len(rows) // 2} pairs" if paired else ""
        return rows, f"{len(rows)} rows ({desirable} desirable, {len(rows) - desirable} undesirable{source})"

"""`task: simpo`: SimPO (Meng et al., 2024, arXiv:2405.14734) through TRL's CPOTrainer with
`loss_type=simpo` and no behaviour-cloning term (`cpo_alpha=0`), as TRL documents it; the
trainer is in `trl.experimental` (its API may change between releases; `ls` says so). The
reward is the answer's length-normalised log-probability, with no reference model;
`training.beta` scales it and `training.simpo_gamma` is the target margin. Setting
`training.cpo_alpha` above 0 adds the chosen answer's likelihood (CPO-SimPO).

Same data, preparation and scores as dpo (preference.py).
"""
from __future__ import annotations

from typing import Any

from .preference import PreferenceTask


class SimpoTask(PreferenceTask):
    name = "simpo"
    summary = "SimPO: length-normalised preference tuning without a reference (TRL's CPOTrainer, trl.experimental)"
    experimental = True
    chunked_loss_head = False  # TRL's experimental trainer builds the full logits

    def trainer_class(self) -> type:
        from trl.experimental.cpo import CPOTrainer

        return CPOTrainer

    def config_class(self) -> type:
        from trl.experimental.cpo import CPOConfig

        return CPOConfig

    def config_values(self, recipe: Any, training: dict[str, Any]) -> dict[str, Any]:
        return {**super().config_values(recipe, training), "loss_type": "simpo",
                "cpo_alpha": training.get("cpo_alpha", 0.0)}

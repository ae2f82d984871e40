"""`task: orpo`: ORPO (Hong et al., 2024, arXiv:2403.07691) with TRL's ORPOTrainer, which TRL
keeps in `trl.experimental` (its API may change between releases; `ls` says so). One stage
instead of SFT then DPO: the chosen answer's likelihood plus a log-odds-ratio term that
favours it over the rejected one, with no reference model (no second copy, on any strategy).
`training.beta` weighs the odds-ratio term (ORPOConfig's lambda, default 0.1).

Same data, preparation and scores as dpo (preference.py). Without a reference, the rewards
are the model's own scaled log-probabilities, so the held-out reward accuracy before
training is the base model's own preference, not 0.
"""
from __future__ import annotations

from .preference import PreferenceTask


class OrpoTask(PreferenceTask):
    name = "orpo"
    summary = "preference tuning without a reference (TRL's ORPOTrainer, trl.experimental)"
    experimental = True
    chunked_loss_head = False  # TRL's experimental trainer builds the full logits

    def trainer_class(self) -> type:
        from trl.experimental.orpo import ORPOTrainer

        return ORPOTrainer

    def config_class(self) -> type:
        from trl.experimental.orpo import ORPOConfig

        return ORPOConfig

"""`task: dpo`: preference tuning with TRL's DPOTrainer (Rafailov et al., 2023,
arXiv:2305.18290) on (prompt, chosen, rejected) pairs (data/formats.py, `preference`).

The reference model is what the policy starts from. With a PEFT strategy (lora, qlora, ia3)
it is the same model with the adapter switched off, so there is no second copy in memory;
with the others (full, freeze, head-only, adapter) TRL loads a frozen second copy of the base
(`training.precompute_ref_log_probs=true` computes the reference log-probabilities once
instead, and frees it). `training.beta`, `training.loss_type` and every other DPOConfig key
pass through, checked like SFTConfig keys. Plain-text pairs go through the chat template
when the model has one, as plain prompt-completion rows do for `sft`, so a DPO run sees the
format an SFT run trained on.

Scored on the held-out pairs by TRL's own evaluation: reward accuracy (the share of pairs
whose implicit reward, beta * (log pi - log pi_ref), is higher for the chosen answer), the
mean reward margin and the DPO loss; before training the policy is the reference, so the
rewards are 0 and the loss is ln 2. Also the share of greedy answers that equal the chosen
one: for a set whose chosen answer is the right one by a rule (datasets/date-pairs), a
win rate that does not depend on the reference.
"""
from __future__ import annotations

from .preference import PreferenceTask


class DpoTask(PreferenceTask):
    name = "dpo"
    summary = "preference tuning (TRL's DPOTrainer) on (prompt, chosen, rejected) pairs"
    uses_reference = True

    def trainer_class(self) -> type:
        from trl import DPOTrainer

        return DPOTrainer

    def config_class(self) -> type:
        from trl import DPOConfig

        return DPOConfig

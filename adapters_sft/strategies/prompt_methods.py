"""PEFT's prompt-based methods: the base model is untouched and a few trained virtual tokens
steer it. Options are PEFT's config fields (peft_methods.py).

  prompt-tuning   trained embeddings of virtual tokens before the input (Lester et al., 2021,
                  arXiv:2104.08691)
  p-tuning        virtual-token embeddings produced by a small trained encoder (Liu et al.,
                  2021, arXiv:2103.10385)

What trained is not a change of any weight, so there is nothing to fold: `merge` and the GGUF
export refuse in one line, and `export --format peft` (the adapter folder) is how the result
is used elsewhere. Generation runs without the key-value cache (scores/generative.py says why).
Prompt tuning initialised from text (`prompt_tuning_init=TEXT`) reads that
text with the run's own tokenizer unless `tokenizer_name_or_path` names another.

Prefix tuning (PEFT's PrefixTuningConfig) is not offered: with PEFT 0.21.2 and transformers
5.24, its generation disagrees with the trained model whether the cache is used or not
(measured on SmolLM2: greedy answers differ from the model's own next-token predictions), so
its eval, generate and chat would report a model other than the one trained.
"""
from __future__ import annotations

from typing import Any

from ..errors import UserError
from .peft_methods import PeftMethodStrategy, _strategy


class _PromptMethod(PeftMethodStrategy):
    def config_values(self, model: Any = None) -> dict[str, Any]:
        values = super().config_values(model)
        if values.get("prompt_tuning_init") == "TEXT" and not values.get("tokenizer_name_or_path"):
            # the run's tokenizer (PEFT requires a name; pre-flight has no model yet)
            values["tokenizer_name_or_path"] = getattr(model, "name_or_path", None) or "the run's model"
        return values

    def check_training(self, args: Any) -> None:
        # TRL's ORPO and CPO (simpo) trainers score every position of the logits against the
        # labels, and the virtual tokens add positions the labels lack (a shape error in step 1);
        # its DPO and KTO trainers take them (tests/tasks/test_preference_tasks.py)
        config = type(args).__name__
        if config in ("ORPOConfig", "CPOConfig"):
            task = "orpo" if config == "ORPOConfig" else "simpo"
            raise UserError(f"strategy.name: '{self.name}' cannot train task '{task}': TRL's "
                            f"{config.removesuffix('Config')}Trainer does not skip the virtual "
                            "tokens' positions; use task dpo or kto, or a strategy that changes "
                            "weights (lora, ...)")

    def check_mergeable(self) -> None:
        raise UserError(f"strategy '{self.name}': trained virtual tokens are not a change of any "
                        "weight, so there is nothing to merge into the model; use the run as it is "
                        "(adapters-sft generate/chat RUN_DIR) or 'adapters-sft export RUN_DIR "
                        "--format peft', which vanilla PEFT loads onto the base model")


PromptTuningStrategy = _strategy("prompt-tuning", _PromptMethod)
PTuningStrategy = _strategy("p-tuning", _PromptMethod)

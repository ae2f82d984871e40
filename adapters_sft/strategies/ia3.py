"""ia3: (IA)^3 through PEFT (Liu et al., 2022, arXiv:2205.05638): learned vectors that rescale
the keys, values and the feed-forward input of each block; far fewer trained numbers than
LoRA (a vector per module instead of two matrices), initialised to ones so training starts
from the base model. Merges into the base weights and saves as a plain PEFT folder.

The whole method is this file: the config, and the options' checks; saving, loading, merging
and the PEFT export come from peft_method.PeftStrategy."""
from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import UserError
from ..fields import option
from .base import Options, Prepared
from .peft_method import PeftStrategy, task_type


@dataclasses.dataclass
class Ia3Options(Options):
    target_modules: list[str] | None = option(
        None, "modules to rescale; unset: PEFT's choice for the architecture (Llama: k_proj, "
              "v_proj, down_proj)")
    feedforward_modules: list[str] | None = option(
        None, "of those, the ones rescaled at their input (feed-forward layers); unset: PEFT's "
              "choice (Llama: down_proj)")
    modules_to_save: list[str] = option([], "modules trained in full and saved with the adapter")

    def __post_init__(self) -> None:
        if self.feedforward_modules is not None and self.target_modules is None:
            raise UserError("strategy.feedforward_modules: needs strategy.target_modules too "
                            "(they must be among the targets)")
        if self.feedforward_modules and self.target_modules is not None:
            extra = sorted(set(self.feedforward_modules) - set(self.target_modules))
            if extra:
                raise UserError(f"strategy.feedforward_modules: {', '.join(extra)} not in "
                                "strategy.target_modules; every feed-forward module must be a target")


class Ia3Strategy(PeftStrategy):
    name = "ia3"
    Options = Ia3Options
    summary = "PEFT (IA)^3: learned rescaling vectors on keys, values and feed-forward; saves a PEFT adapter"

    def peft_config(self, model: Any = None) -> Any:
        from peft import IA3Config

        o = self.opts
        return IA3Config(target_modules=o.target_modules, feedforward_modules=o.feedforward_modules,
                         modules_to_save=o.modules_to_save or None, task_type=task_type(model))

    def prepare(self, model: Any) -> Prepared:
        if self.opts.target_modules is None:
            from peft.utils.constants import TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING as known

            kind = getattr(model.config, "model_type", "?")
            if kind not in known:
                raise UserError(f"strategy.target_modules: PEFT has no default (IA)^3 modules for "
                                f"'{kind}' models; name them, with strategy.feedforward_modules")
        return super().prepare(model)

"""GaLore and APOLLO: memory-lean optimizers for full-parameter training, as transformers
names them in `training.optim` (galore_adamw, galore_adamw_8bit, galore_adafactor, their
_layerwise forms; apollo_adamw, apollo_adamw_layerwise). transformers builds them; we add what
it lacks before any model loads:

  the package       galore-torch / apollo-torch are optional extras here; missing, the
                    Trainer would fail after the model loaded, with an install line for a git
                    URL. We say it first, naming our extra: pip install 'adapters-sft[galore]'.
  the targets       `training.optim_target_modules` (the linear layers whose gradients are
                    projected to low rank). transformers refuses an unset one; we default it
                    to 'all-linear' (every linear layer but a tied head), as LLaMA-Factory does.
  our groups        layer-wise learning rates and LoRA+ build their own parameter groups
                    (optim.py), which these optimizers' own grouping would replace: refused.

Settings go through `training.optim_args`, as transformers reads them: e.g.
"rank=128,update_proj_gap=200,scale=0.25" (GaLore: Zhao et al. 2024, arXiv:2403.03507;
APOLLO: Zhu et al. 2024, arXiv:2412.05270).
"""
from __future__ import annotations

import importlib.util
from typing import Any, Callable

from ..errors import UserError

#: optim prefix -> (import name, extra of ours that installs it)
FAMILIES = {"galore": ("galore_torch", "galore"), "apollo": ("apollo_torch", "apollo")}


def family(optim: Any) -> str | None:
    name = str(getattr(optim, "value", optim) or "")
    return next((f for f in FAMILIES if name.startswith(f + "_")), None)


def check(training: dict[str, Any], where: Callable[[str], str], grouped: str | None = None) -> None:
    """Refuse a low-rank optimizer whose package is missing, or one next to our own parameter
    groups (`grouped`: the key that asks for them, e.g. 'training.layer_lr_decay')."""
    optim = training.get("optim")
    found = family(optim)
    if found is None:
        return
    module, extra = FAMILIES[found]
    if not installed(module):
        raise UserError(f"{where('training.optim')}training.optim: {optim} needs the "
                        f"{module.replace('_', '-')} package; pip install 'adapters-sft[{extra}]'")
    if grouped:
        raise UserError(f"{where('training.optim')}training.optim: {optim} builds its own parameter "
                        f"groups, so {grouped} cannot apply; remove one of them")


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ValueError:  # in sys.modules as None: import blocked
        return False


def defaults(training: dict[str, Any]) -> dict[str, Any]:
    """The Trainer's config values a low-rank optimizer needs and the user left out."""
    if family(training.get("optim")) and "optim_target_modules" not in training:
        return {"optim_target_modules": "all-linear"}
    return {}

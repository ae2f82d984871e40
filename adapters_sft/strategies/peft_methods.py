"""PEFT's other adapter methods, one table row each. Every row is a strategy name whose options
are the fields of PEFT's own config dataclass for the method (their defaults and PEFT's help
strings, shown by `adapters-sft show`), so a PEFT release that adds a field needs no change
here; an unknown key is refused with a suggestion like every option. Saving, loading, merging
(`merge_and_unload`) and the PEFT export come from peft_method.PeftStrategy.

  loha       low-rank Hadamard product (Hyeon-Woo et al., 2022, arXiv:2108.06098)
  lokr       low-rank Kronecker product (Yeh et al., 2023, arXiv:2309.14859)
  vera       shared frozen random matrices, trained scaling vectors (Kopiczko et al., 2024,
             arXiv:2310.11454)
  oft        orthogonal fine-tuning: a block-diagonal rotation of each weight (Qiu et al., 2023,
             arXiv:2306.07280)
  boft       butterfly-factorised orthogonal fine-tuning (Liu et al., 2024, arXiv:2311.06243)
  hra        Householder reflections (Yuan et al., 2024, arXiv:2405.17484)
  fourierft  a few trained spectral coefficients per weight (Gao et al., 2024, arXiv:2405.03003)
  adalora    LoRA whose rank budget is moved between weights while training (Zhang et al.,
             2023, arXiv:2303.10512): adalora.py
  prompt-tuning, p-tuning   trained virtual tokens: prompt_methods.py

The options class is built from PEFT's dataclass the first time it is asked for, so `ls` and
`--help` import no PEFT. Fields that are not plain values (nested configs), and the ones we set
ourselves (task_type, the base model's name), are left out. PEFT's config is built in pre-flight
too, so a combination PEFT refuses is one line before anything loads.
"""
from __future__ import annotations

import dataclasses
import enum
import types
import typing
from typing import Any, ClassVar, Literal, Optional, Union

from ..errors import UserError, first_line
from ..fields import Range, option
from .base import Options
from .peft_method import PeftStrategy, task_type

# row: (PEFT config class, one line for `ls`)
METHODS: dict[str, tuple[str, str]] = {
    "loha": ("LoHaConfig", "PEFT LoHa: low-rank Hadamard-product updates; saves a PEFT adapter"),
    "lokr": ("LoKrConfig", "PEFT LoKr: low-rank Kronecker-product updates; saves a PEFT adapter"),
    "vera": ("VeraConfig", "PEFT VeRA: frozen shared random matrices, trained scaling vectors; "
                           "saves a PEFT adapter"),
    "oft": ("OFTConfig", "PEFT OFT: orthogonal (block-diagonal) rotations of each weight; saves a "
                         "PEFT adapter"),
    "boft": ("BOFTConfig", "PEFT BOFT: butterfly-factorised orthogonal rotations; saves a PEFT "
                           "adapter"),
    "hra": ("HRAConfig", "PEFT HRA: Householder-reflection updates; saves a PEFT adapter"),
    "fourierft": ("FourierFTConfig", "PEFT FourierFT: a few trained Fourier coefficients per "
                                     "weight; saves a PEFT adapter"),
    "adalora": ("AdaLoraConfig", "PEFT AdaLoRA: LoRA whose rank budget moves to the weights that "
                                 "matter while training; saves a PEFT adapter"),
    "prompt-tuning": ("PromptTuningConfig", "PEFT prompt tuning: trained virtual-token embeddings "
                                            "before the input; saves a PEFT adapter, cannot merge"),
    "p-tuning": ("PromptEncoderConfig", "PEFT P-tuning: virtual tokens from a small trained "
                                        "encoder; saves a PEFT adapter, cannot merge"),
}
# Where PEFT has no usable default: the prompt methods leave the virtual-token count unset
# (None is refused when the model is built); 20 is in the range PEFT's own examples use.
DEFAULTS: dict[str, dict[str, Any]] = {
    name: {"num_virtual_tokens": 20} for name in ("prompt-tuning", "p-tuning")}
# Set by us per method: AdaLoRA's total steps come from the trainer and its rank pattern from
# training (adalora.py).
SET_BY_US: dict[str, set[str]] = {"adalora": {"total_step", "rank_pattern"}}
# PeftConfig's bookkeeping and what the task decides: never the user's to set
OURS = {"task_type", "peft_type", "auto_mapping", "peft_version", "base_model_name_or_path",
        "revision", "inference_mode"}
_PLAIN = (int, float, str, bool, type(None))


def _plain(tp: Any) -> bool:
    """A type fields.build can check: plain values, lists, dicts, literals and unions of them."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return all(_plain(arm) for arm in typing.get_args(tp))
    if origin is Literal:
        return True
    if origin in (list, dict):
        return all(_plain(arg) or arg is Any for arg in typing.get_args(tp))
    return tp in (*_PLAIN, list, dict)


def _values_of_enums(tp: Any) -> Any:
    """A str Enum (or a union of one with str, as PEFT types its choices) as the Literal of its
    values: what a recipe writes, and what `show` lists."""
    arms = typing.get_args(tp) if typing.get_origin(tp) in (Union, types.UnionType) else (tp,)
    enums = [a for a in arms if isinstance(a, type) and issubclass(a, enum.Enum)]
    if not enums:
        return tp
    return Literal[tuple(m.value for e in enums for m in e)]


def _numeric(tp: Any) -> bool:
    arms = typing.get_args(tp) if typing.get_origin(tp) in (Union, types.UnionType) else (tp,)
    return any(a in (int, float) for a in arms)


def _range(name: str, tp: Any, default: Any) -> Range | None:
    """PEFT checks few numbers; ours are checked at load. Dropouts are probabilities; every other
    number these methods take (ranks, sizes, counts, scales, seeds) is finite and >= 0, or as
    low as PEFT's default where that is a negative marker (LoKr's decompose_factor -1: "auto").
    A saved run's recipe holds every default, so each must be in its range."""
    if not _numeric(tp):
        return None
    if "dropout" in name:
        return Range(0, 1, high_open=True)
    if name == "num_virtual_tokens":  # the prompt methods: none would train nothing
        return Range(1)
    if name == "deltaT":  # AdaLoRA allocates every deltaT steps (a modulus)
        return Range(1)
    if name in ("beta1", "beta2"):  # AdaLoRA's moving-average factors (PEFT asserts them)
        return Range(0, 1, low_open=True, high_open=True)
    low = default if isinstance(default, (int, float)) and not isinstance(default, bool) else 0
    return Range(min(0, low))


def options_class(strategy: str, config_name: str) -> type[Options]:
    """The options dataclass of one method, from PEFT's config dataclass."""
    import peft

    config = getattr(peft, config_name)
    hints = typing.get_type_hints(config)
    fields = []
    for f in dataclasses.fields(config):
        tp = _values_of_enums(hints[f.name])
        if not f.init or f.name in OURS | SET_BY_US.get(strategy, set()) or not _plain(tp):
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        default = DEFAULTS.get(strategy, {}).get(f.name, default)
        default = default.value if isinstance(default, enum.Enum) else default
        if default is None:  # PEFT types some fields `int = None`: a saved recipe holds the None
            tp = Optional[tp]
        help_ = " ".join(str(f.metadata.get("help", "")).split()) or f"PEFT's {config_name}.{f.name}"
        fields.append((f.name, tp, option(default, help_, _range(f.name, tp, default))))
    return dataclasses.make_dataclass(f"{config_name.removesuffix('Config')}Options", fields,
                                      bases=(Options,))


class _BuiltOnFirstUse(type):
    """`cls.Options` built from PEFT the first time it is read (then kept)."""

    @property
    def Options(cls) -> type[Options]:  # noqa: N802 (the contract's attribute name)
        if "_options" not in cls.__dict__:
            cls._options = options_class(cls.name, cls.config_name)
        return cls.__dict__["_options"]


class PeftMethodStrategy(PeftStrategy, metaclass=_BuiltOnFirstUse):
    config_name: ClassVar[str] = ""

    def peft_config(self, model: Any = None) -> Any:
        import peft

        values = self.config_values(model)
        try:
            return getattr(peft, self.config_name)(task_type=task_type(model), **values)
        except (ValueError, TypeError) as exc:
            raise UserError(f"strategy: PEFT's {self.config_name} refused the options "
                            f"({first_line(exc)}); see 'adapters-sft show {self.name}'") from None

    def config_values(self, model: Any = None) -> dict[str, Any]:
        """PEFT's config fields: the options, and what a kind of method sets itself."""
        return {k: v for k, v in dataclasses.asdict(self.opts).items() if k != "name"}

    def preflight(self) -> None:
        self.peft_config()  # PEFT's own checks of the options, before anything loads


def _strategy(name: str, base: type[PeftMethodStrategy] = PeftMethodStrategy) -> type[PeftMethodStrategy]:
    """The strategy class of one table row, on `base` (what is particular to a kind of method)."""
    config_name, summary = METHODS[name]
    cls_name = name.title().replace("-", "") + "Strategy"
    return _BuiltOnFirstUse(cls_name, (base,),
                            {"name": name, "config_name": config_name, "summary": summary,
                             "__module__": __name__, "__qualname__": cls_name})


# one class per name: the entry points (pyproject.toml) name them, as a third party's would
LohaStrategy = _strategy("loha")
LokrStrategy = _strategy("lokr")
VeraStrategy = _strategy("vera")
OftStrategy = _strategy("oft")
BoftStrategy = _strategy("boft")
HraStrategy = _strategy("hra")
FourierftStrategy = _strategy("fourierft")

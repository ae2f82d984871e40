"""qlora: LoRA on a base model quantized by bitsandbytes (Dettmers et al., 2023,
arXiv:2305.14314): `bits: 4` (NF4 with double quantization) or `bits: 8` (LLM.int8).

The base weights stay frozen in 4 or 8 bits, which is what lets a 7-8B model fine-tune on one
24 GB GPU. On CUDA the adapter trains in bf16 as the paper recommends (TRL casts it); on CPU
we keep it in fp32, where bf16 brings no speed and only loses precision.

The weights that are not quantized (embeddings, output head, norms) stay in the compute dtype
rather than PEFT's fp32 cast (`prepare_model_for_kbit_training`): on Llama-3.1-8B that cast
costs 2 GiB of weights and doubles every hidden state kept between layers, and it bought no
quality in our side-by-side run (docs/design-notes.md). `upcast_base: true` restores it.

CPU trap (FACTS.md): on CPUs with AVX512-BF16 a 4-bit layer run once without grad (an eval
pass) repacks its weights for inference and silently loses its backward path. We switch that
repacking off on every 4-bit layer right after loading.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from ..errors import UserError
from ..fields import option
from .base import Prepared, damaged_run_file
from .lora import LoraOptions, LoraStrategy


@dataclasses.dataclass
class QLoraOptions(LoraOptions):
    bits: Literal[4, 8] = option(4, "4 (NF4, double quantization) or 8 (LLM.int8)")
    quant_type: str = option("nf4", "4-bit data type: nf4 or fp4")
    double_quant: bool = option(True, "quantize the 4-bit scales too (saves ~0.4 bit/param)")
    adapter_dtype: str = option("auto", "LoRA weight dtype: auto (bf16 on CUDA, fp32 on CPU), "
                                        "bfloat16 or float32")
    upcast_base: bool = option(False, "cast the weights that are not quantized (embeddings, head, "
                                      "norms) to fp32, as PEFT's prepare_model_for_kbit_training "
                                      "does; off keeps them, and the hidden states, in the compute dtype")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.quant_type not in ("nf4", "fp4"):
            raise UserError(f"strategy.quant_type: must be nf4 or fp4, got '{self.quant_type}'")
        if self.rewrites_base:
            raise UserError(f"strategy.init: {self.init} rewrites the base weights, which qlora "
                            "keeps quantized; use init default, gaussian or orthogonal, or strategy lora")
        if self.adapter_dtype not in ("auto", "bfloat16", "float32"):
            raise UserError(f"strategy.adapter_dtype: must be auto, bfloat16 or float32, "
                            f"got '{self.adapter_dtype}'")


def require_bitsandbytes(bits: int) -> None:
    """Installed, found without importing it (its import takes seconds, and loads torch)."""
    import importlib.util
    import sys

    try:
        found = sys.modules["bitsandbytes"] is not None if "bitsandbytes" in sys.modules else \
            importlib.util.find_spec("bitsandbytes") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise UserError(f"strategy.bits: {bits}-bit loading needs bitsandbytes: run "
                        "'pip install bitsandbytes', or use strategy 'lora'") from None


class QLoraStrategy(LoraStrategy):
    name = "qlora"
    Options = QLoraOptions
    summary = "LoRA on a 4-bit (NF4) or 8-bit bitsandbytes base; saves a PEFT adapter"

    def preflight(self) -> None:
        require_bitsandbytes(self.opts.bits)

    def load_options(self) -> dict[str, Any]:
        import torch
        from transformers import BitsAndBytesConfig

        o = self.opts
        require_bitsandbytes(o.bits)
        cuda = torch.cuda.is_available()
        compute = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
        if o.bits == 4:
            quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=o.quant_type,
                                       bnb_4bit_use_double_quant=o.double_quant,
                                       bnb_4bit_compute_dtype=compute)
        else:
            quant = BitsAndBytesConfig(load_in_8bit=True)
        from ..processes import local_rank

        return {"quantization_config": quant, "dtype": compute,
                "device_map": {"": local_rank()} if cuda else "cpu"}

    def prepare(self, model: Any) -> Prepared:
        disable_cpu_inference_repack(model)
        if self.opts.upcast_base and not stored_as_float(model):
            from peft import prepare_model_for_kbit_training

            # Gradient checkpointing is the trainer's decision (training.gradient_checkpointing).
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        # else the other weights stay in the compute dtype (module doc); a sharded run
        # (sharding.py) needs that anyway: FSDP splits tensors of one dtype
        for p in model.parameters():  # what PEFT's preparation did besides the cast
            p.requires_grad_(False)
        return Prepared(model, self.peft_config(model))

    def after_trainer(self, trainer: Any) -> None:
        import torch

        want = self.opts.adapter_dtype
        if want == "auto":
            want = "bfloat16" if next(trainer.model.parameters()).is_cuda else "float32"
        dtype = getattr(torch, want)
        for p in trainer.model.parameters():
            if p.requires_grad and p.dtype != dtype:
                p.data = p.data.to(dtype)

    def load_trained(self, base: Any, out: Path) -> Any:
        disable_cpu_inference_repack(base)
        return super().load_trained(base, out)

    def load_for_merge(self, recipe: Any, out: Path) -> Any:
        """The faithful merge (FACTS.md): quantize the base exactly as in training, dequantize
        it, then put the adapter on it. Merging into the original full-precision base instead
        differs by the whole quantization error; merging into the 4-bit weights is lossy."""
        import torch

        from ..models import load_model

        base = load_model(recipe.model, self.load_options(), recipe.trust_remote_code)
        base = base.dequantize().to(device="cpu", dtype=torch.float32)
        with damaged_run_file(out):
            return super().load_trained(base, out)  # LoRA's: the dequantized base needs no repack guard


def stored_as_float(model: Any) -> bool:
    """Whether the 4-bit weights are stored in a float dtype (`bnb_4bit_quant_storage`), as
    sharding.load_values asks for FSDP-QLoRA, rather than bitsandbytes' default uint8."""
    import torch

    quant = getattr(getattr(model, "hf_quantizer", None), "quantization_config", None)
    storage = getattr(quant, "bnb_4bit_quant_storage", torch.uint8)
    return getattr(quant, "load_in_4bit", False) and getattr(storage, "is_floating_point", False)


def disable_cpu_inference_repack(model: Any) -> None:
    """Keep bitsandbytes from repacking 4-bit CPU weights for inference (see module doc)."""
    import sys

    bnb = sys.modules.get("bitsandbytes")
    if bnb is None:  # never imported, so no module is its Linear4bit (plan's meta model): its
        return       # import alone takes seconds, which `plan` would spend for nothing

    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit) and hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False

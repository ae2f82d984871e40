"""The plan's estimate of peak memory against the measured peak, for real training steps.

Each case trains a recipe for a few steps through adapters-sft's own trainer and measures the
peak of the tensors alive at once during one full step after the first (the optimizer state
exists by then):

  CUDA   torch.cuda.max_memory_allocated over that step (reset at its start)
  CPU    a dispatch mode that follows every tensor storage the step creates and frees, on top
         of the parameters, buffers and optimizer state it starts with: the CPU counterpart of
         max_memory_allocated, without allocator slack or Python objects

and prints it beside `adapters-sft plan`'s "tensors at peak" for the same recipe on the same
device, with the ratio. Writes JSON to --out.

Run from the repository root:
  python benchmarks/plan_check.py                      # SmolLM2-135M cases, about 8 minutes on 2 cores
  python benchmarks/plan_check.py --model PATH --case lora:4:256 ...
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

# strategy:batch:length[:flag...]  flags: gc (gradient checkpointing on), bf16 (dtype=bfloat16:
# qlora's unquantized weights and hidden states then stay bf16), tileN (training.mlp_tile_tokens=N)
CASES = ["lora:4:256", "lora:4:512", "lora:4:512:gc", "qlora:4:512", "full:2:256", "full:2:512:gc",
         "lora:4:512:gc:tile256", "qlora:4:512:bf16", "qlora:4:512:gc:bf16:tile512"]


def tensor_peak() -> Any:
    """A dispatch mode following every storage the ops under it create, freed or alive: the
    CPU counterpart of CUDA's max_memory_allocated (no allocator slack, no Python objects)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves
    from torch.utils.weak import WeakIdKeyDictionary, weakref

    class Peak(TorchDispatchMode):
        def __init__(self, alive: list[Any]) -> None:
            super().__init__()
            self.tracked: Any = WeakIdKeyDictionary()
            self.refs: list[Any] = []
            self.live = self.peak = 0
            for t in alive:
                self.track(t.untyped_storage())

        def track(self, st: Any) -> None:
            if st in self.tracked or st.nbytes() == 0:
                return
            size = st.nbytes()
            self.tracked[st] = size
            self.live += size
            self.peak = max(self.peak, self.live)
            self.refs.append(weakref.ref(st, lambda _, size=size: self.free(size)))

        def free(self, size: int) -> None:
            self.live -= size

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            out = func(*args, **(kwargs or {}))
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor) and t.device.type != "meta":
                    self.track(t.untyped_storage())
            return out

    return Peak


def alive(model: Any, optimizer: Any) -> list[Any]:
    """The tensors a step starts with: parameters (with bitsandbytes' quantization state),
    buffers, gradients and optimizer state."""
    import torch

    out = []
    for p in model.parameters():
        out.append(p.data)
        state = getattr(p, "quant_state", None)
        if state is not None:
            out += [state.absmax, state.code] + ([state.offset, state.state2.absmax,
                                                  state.state2.code] if state.nested else [])
        if getattr(p, "SCB", None) is not None:
            out.append(p.SCB)
        if p.grad is not None:
            out.append(p.grad)
    out += [m.state.SCB for m in model.modules()
            if getattr(getattr(m, "state", None), "SCB", None) is not None]
    out += list(model.buffers())
    out += [v for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v)]
    return out


def measure_step(recipe: Any, work: Path) -> int:
    """Peak bytes of tensors during the second training step of `recipe`."""
    import torch
    from transformers import TrainerCallback

    from adapters_sft.trainer import build_trainer

    trainer, _, _ = build_trainer(recipe, work)
    cuda = torch.cuda.is_available()
    peak: dict[str, int] = {}

    class Probe(TrainerCallback):
        mode: Any = None

        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.global_step != 1:
                return
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                return
            self.mode = tensor_peak()(alive(trainer.model, trainer.optimizer))
            self.mode.__enter__()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.global_step != 2:
                return
            if cuda:
                torch.cuda.synchronize()
                peak["bytes"] = torch.cuda.max_memory_allocated()
                return
            self.mode.__exit__(None, None, None)
            peak["bytes"] = self.mode.peak

    trainer.add_callback(Probe())
    trainer.train()
    return peak["bytes"]


def recipe_for(case: str, model: str | None, train: Path) -> tuple[Any, str]:
    from adapters_sft.recipe import load_recipe

    strategy, batch, length, *flags = case.split(":")
    overrides = [f"strategy={strategy}", f"training.per_device_train_batch_size={batch}",
                 f"data.max_length={length}", f"data.train={train}", "data.eval=null",
                 "data.val_size=null", "eval.metric=none", "training.max_steps=3",
                 "training.logging_steps=1", "data.packing=false",
                 f"training.gradient_checkpointing={'true' if 'gc' in flags else 'false'}"]
    if "bf16" in flags:
        overrides.append("dtype=bfloat16")
    overrides += [f"training.mlp_tile_tokens={f[4:]}" for f in flags if f.startswith("tile")]
    if model:
        overrides.append(f"model={model}")
    return load_recipe("smollm2-135m/lora", overrides), case


def full_rows(path: Path, length: int, rows: int) -> None:
    """Rows long enough to fill `length` tokens after truncation, so every batch is full."""
    words = " ".join(f"w{i}" for i in range(length))
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": "repeat"},
                                                     {"role": "assistant", "content": words}]}) + "\n"
                            for _ in range(rows)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", help="strategy:batch:length[:gc]; repeatable")
    parser.add_argument("--model", help="model folder (default: the recipe's SmolLM2)")
    parser.add_argument("--out", default="benchmarks/results/plan_check.json")
    args = parser.parse_args()

    import torch

    from adapters_sft.plan import estimate
    from adapters_sft.plan.target import this_machine

    target = this_machine()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.case or CASES:
            length = int(case.split(":")[2])
            train = Path(tmp) / f"train-{length}.jsonl"
            full_rows(train, length, 32)
            recipe, name = recipe_for(case, args.model, train)
            planned = estimate(recipe, target)
            real = measure_step(recipe, Path(tmp) / name.replace(":", "-"))
            row = {"case": name, "planned": planned.tensors, "measured": real,
                   "ratio": round(planned.tensors / real, 3),
                   "terms": {t.name: t.bytes for t in planned.terms}}
            print(f"{name:<16} planned {planned.tensors / 2**20:9.1f} MiB   measured "
                  f"{real / 2**20:9.1f} MiB   planned/measured {row['ratio']}", flush=True)
            results.append(row)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU (tensor storages, dispatch mode)"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"device": device, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()

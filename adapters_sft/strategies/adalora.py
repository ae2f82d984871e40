"""AdaLoRA (Zhang et al., 2023, arXiv:2303.10512): LoRA in SVD form whose rank budget moves,
while training, from `init_r` per weight to `target_r` on average, to the weights whose
singular values matter most. Options are PEFT's AdaLoraConfig fields (peft_methods.py).

What PEFT leaves to the training loop, done here:
  total steps   the rank schedule (warm-up `tinit`, budgeting, final `tfinal`) needs the run's
                optimizer steps. They are the trainer's own count (`state.max_steps`, set when
                training begins: from `training.max_steps`, or from the epochs and the data;
                the Trainer refuses data without a length unless `training.max_steps` is set);
                pre-flight checks the schedule against `training.max_steps` when it is set.
  each step     `update_and_allocate(step)` after the optimizer step, before the gradients
                are zeroed (PEFT's documented order): a callback on the Trainer's
                `on_optimizer_step`, which runs exactly there.
  exact resume  the importance scores (moving averages of |w * grad|) and the rank pattern
                live outside the parameters; every checkpoint keeps them
                (Strategy.checkpoint_state).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from ..errors import UserError
from .peft_methods import PeftMethodStrategy, _strategy

_SCORES = ("ipt", "exp_avg_ipt", "exp_avg_unc")


class _AdaLora(PeftMethodStrategy):
    _model: Any = None

    def config_values(self, model: Any = None) -> dict[str, Any]:
        # The least total PEFT's config accepts (it only checks the schedule fits): the real
        # count is the trainer's, set on the same config object before step 0 (after_trainer).
        return {**super().config_values(model), "total_step": self.opts.tinit + self.opts.tfinal + 1}

    def _check_fits(self, steps: int, source: str) -> None:
        o = self.opts
        if o.tinit + o.tfinal >= steps:
            raise UserError(f"strategy.tinit + strategy.tfinal: AdaLoRA's warm-up ({o.tinit}) and "
                            f"final phase ({o.tfinal}) leave no budgeting step in the run's {steps} "
                            f"optimizer steps ({source}); lower them or train longer")

    def check_training(self, args: Any) -> None:
        if args.max_steps > 0:  # else the epochs decide: checked when the trainer has counted
            self._check_fits(args.max_steps, "training.max_steps")

    def after_trainer(self, trainer: Any) -> None:
        from transformers import TrainerCallback

        self._model = trainer.model
        strategy = self

        class Allocate(TrainerCallback):
            def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                # always known here: the Trainer itself refuses data without a length and
                # no training.max_steps before training begins
                strategy._check_fits(state.max_steps, "the trainer's count")
                strategy._allocator().set_total_step(state.max_steps)

            def on_optimizer_step(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                strategy._model.base_model.update_and_allocate(state.global_step)

        trainer.add_callback(Allocate())

    def _allocator(self) -> Any:
        return self._model.base_model.rankallocator

    def _config(self) -> Any:
        base = self._model.base_model
        return base.peft_config[base.trainable_adapter_name]

    # PEFT 0.21.2 warns, wrongly for AdaLoRA, when a weight's budget went to rank 0 (a
    # "zero-sized lora_A ... FSDP shards were not gathered") and when its rank pattern (masks,
    # not LoRA's ranks) is read back ("keys did not match any targeted module"); the reload
    # reproduces the trained model (tests/strategies/test_adalora.py).
    def save(self, model: Any, out: Path, state_dict: dict[str, Any] | None = None) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*LoRA tensor.*have invalid shape")
            super().save(model, out, state_dict)

    def load_trained(self, base: Any, out: Path) -> Any:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*rank_pattern keys did not match")
            return super().load_trained(base, out)

    def checkpoint_state(self) -> dict[str, Any]:
        import torch

        if self._model is None:
            return {}
        allocator = self._allocator()
        out = {f"{kind}:{n}": t.detach().contiguous().cpu()
               for kind in _SCORES for n, t in getattr(allocator, kind).items()}
        pattern = self._config().rank_pattern or {}
        out.update({f"rank_pattern:{n}": torch.tensor(mask, dtype=torch.bool) for n, mask in pattern.items()})
        return out

    def restore_checkpoint_state(self, tensors: dict[str, Any]) -> None:
        allocator = self._allocator()
        device = next(self._model.parameters()).device
        pattern = {}
        for key, tensor in tensors.items():
            kind, name = key.split(":", 1)
            if kind == "rank_pattern":
                pattern[name] = tensor.tolist()
            else:
                getattr(allocator, kind)[name] = tensor.to(device)
        self._config().rank_pattern = pattern or None


AdaloraStrategy = _strategy("adalora", _AdaLora)

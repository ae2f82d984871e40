"""What each logged training step costs: tokens/s (real tokens, not padding), the share of the
batches that was padding, and the peak memory so far, added to every training log line (the
progress output, `metrics.jsonl`, and the trackers of `training.report_to`).

  tokens_per_second  real tokens since the previous log line over the wall time since then
                     (the time includes any evaluation in between); real = the attention
                     mask's ones, or every token of a padding-free (packed) batch; in a
                     multi-process run, the tokens of all processes
  padding            1 - real / all tokens in those batches
  peak_memory_gb     CUDA: torch.cuda.max_memory_allocated (the tensors' peak; the caching
                     allocator reserves more, `torch.cuda.max_memory_reserved`); CPU: the
                     process's peak resident set (ru_maxrss), weights and Python included;
                     per process (the main one's) in a multi-process run

Batches without `input_ids` (preference trainers batch prompt/chosen/rejected ids; GRPO's
trainer is handed the prompts and samples the rest) log the peak memory only.
"""
from __future__ import annotations

import time
from typing import Any


def _on_cuda() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_initialized()


def peak_memory_gb() -> float:
    import resource

    import torch

    if _on_cuda():
        return round(torch.cuda.max_memory_allocated() / 2**30, 3)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)  # KiB on Linux


def memory_kind() -> str:
    """What peak_memory_gb measures here."""
    return "CUDA, allocated" if _on_cuda() else "process RSS"


def all_processes(real: Any, total: int) -> tuple[float, int]:
    """(real, all) tokens summed over the run's processes: a data-parallel run trains on all
    of them at once. Every process logs at the same steps, so the sum is a safe collective."""
    from .processes import all_reduce

    summed, count = all_reduce([float(real), float(total)])
    return summed, int(count)


def measured(base: type) -> type:
    """`base` (a Trainer class) counting the tokens it trains on and logging what they cost."""

    class Measured(base):  # type: ignore[misc, valid-type]
        # real tokens stay a (device) tensor sum until a log line reads them: converting every
        # step would stall a GPU on a host sync
        _real: Any = 0
        _total = 0  # since the last log line
        _run_real: Any = 0
        _run_total = 0  # this session
        _since: float | None = None

        def cost(self, seconds: float) -> dict[str, Any]:
            """This session's real tokens per second over `seconds` of training, its padding
            and the peak memory: what the run's summary says."""
            out: dict[str, Any] = {"peak_memory_gb": peak_memory_gb()}
            real, total = all_processes(self._run_real, self._run_total)
            if total:
                out["tokens_per_second"] = round(real / max(seconds, 1e-9), 1)
                out["padding"] = round(1 - real / total, 4)
            return out

        def training_step(self, model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            if self._since is None:
                self._since = time.perf_counter()
            ids = inputs.get("input_ids") if isinstance(inputs, dict) else None  # grpo: a list of prompts
            if ids is not None:
                mask = inputs.get("attention_mask")
                real = mask.sum() if mask is not None else ids.numel()
                self._real, self._total = self._real + real, self._total + ids.numel()
                self._run_real, self._run_total = self._run_real + real, self._run_total + ids.numel()
            return super().training_step(model, inputs, *args, **kwargs)

        def log(self, logs: dict[str, Any], *args: Any, **kwargs: Any) -> None:
            if "loss" in logs and self._since is not None:  # a training log line
                now = time.perf_counter()
                real, total = all_processes(self._real, self._total)
                if total:
                    logs["tokens_per_second"] = round(real / max(now - self._since, 1e-9), 1)
                    logs["padding"] = round(1 - real / total, 4)
                logs["peak_memory_gb"] = peak_memory_gb()
                self._real = self._total = 0
                self._since = now
            super().log(logs, *args, **kwargs)

    Measured.__name__ = Measured.__qualname__ = f"Measured{base.__name__}"
    return Measured

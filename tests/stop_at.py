"""Run the adapters-sft CLI and send this very process a real signal at the start of
optimizer step N (after any checkpoint of step N-1 is complete):

    python tests/stop_at.py N KILL|INT|TERM train RECIPE key=value ...

Tests use it to interrupt training at a known step without racing the clock. Under torchrun,
STOP_RANK=R signals only the process of that rank (the others must follow it);
SHARD_ON_CPU=1 allows FSDP on the CPU as tests/shard_on_cpu.py does.
"""
from __future__ import annotations

import os
import signal
import sys
from typing import Any


def main() -> int:
    from transformers import TrainerCallback

    import adapters_sft.trainer as trainer
    from adapters_sft.cli.main import main as cli

    if os.environ.get("SHARD_ON_CPU") == "1":
        from shard_on_cpu import allow_fsdp_on_cpu  # beside this file

        allow_fsdp_on_cpu()
    step, sig = int(sys.argv[1]), getattr(signal, "SIG" + sys.argv[2])
    only = os.environ.get("STOP_RANK")
    if only is not None and os.environ.get("RANK", "0") != only:
        step = -1  # never

    class Stop(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.global_step == step - 1:
                os.kill(os.getpid(), sig)

    build = trainer.build_trainer

    def build_with_stop(*args: Any, **kwargs: Any) -> Any:
        built = build(*args, **kwargs)
        built[0].add_callback(Stop())
        return built

    trainer.build_trainer = build_with_stop
    return cli(sys.argv[3:])


if __name__ == "__main__":
    sys.exit(main())

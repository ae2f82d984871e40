"""Run the adapters-sft CLI with FSDP allowed on the CPU, for tests under torchrun (gloo):

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/shard_on_cpu.py train RECIPE k=v ...

accelerate turns FSDP on only for GPU processes; on a CPU it keeps the run plain data-parallel
(DistributedType.MULTI_CPU), and adapters-sft refuses sharding there for that reason
(sharding.can_shard_here). This lifts both gates and nothing else: the Trainer, accelerate's
FSDP2 wrapping (torch's fully_shard over a CPU mesh), the gathering for saves and checkpoints
are the real ones. FSDP2 on CPU/gloo is experimental upstream, so a pass here proves our side
of the integration, not GPU behaviour.

SHARD_REPORT=PATH: each process writes PATH.RANK.json, listing for every parameter of the
trained model whether it is split (a DTensor) and how many of its elements this process holds,
so a test can see that the model was really sharded.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def allow_fsdp_on_cpu() -> None:
    import accelerate.state as state
    from accelerate.utils import DistributedType

    import adapters_sft.sharding as sharding

    init = state.AcceleratorState.__init__

    def init_with_fsdp(self: Any, *args: Any, fsdp_plugin: Any = None, **kwargs: Any) -> None:
        init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
        if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
            self.fsdp_plugin = fsdp_plugin
            self.distributed_type = DistributedType.FSDP  # what a GPU process gets
            state.PartialState._shared_state["distributed_type"] = DistributedType.FSDP

    state.AcceleratorState.__init__ = init_with_fsdp
    sharding.can_shard_here = lambda: True
    report = os.environ.get("SHARD_REPORT")
    if report:
        gather = sharding.full_state_dict

        def gather_and_report(trainer: Any) -> Any:
            from torch.distributed.tensor import DTensor

            held = {name: {"split": isinstance(p, DTensor), "numel": p.numel(),
                           "here": p.to_local().numel() if isinstance(p, DTensor) else p.numel()}
                    for name, p in trainer.model.named_parameters()}
            Path(f"{report}.{os.environ['RANK']}.json").write_text(json.dumps(held))
            return gather(trainer)

        sharding.full_state_dict = gather_and_report


def main() -> int:
    from adapters_sft.cli.main import main as cli

    allow_fsdp_on_cpu()
    return cli(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())

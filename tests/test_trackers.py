"""training.report_to: TensorBoard's event files land in the run directory (not under
checkpoints/, which is removed when the run completes), named after the recipe, with a
training loss for every logged step and the cost figures of measure.py."""
from __future__ import annotations

import pytest

from adapters_sft.rundir import TENSORBOARD
from adapters_sft.trainer import train

pytest.importorskip("tensorboard", reason="pip install tensorboard (the [test] extra has it)")


def test_tensorboard_events_are_written_into_the_run_and_read_back(tiny_recipe):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    recipe = tiny_recipe("lora", "training.report_to=tensorboard", "training.max_steps=3", "eval.metric=none")
    run = train(recipe, echo=lambda *_: None).run_dir
    folders = {p.parent for p in (run / TENSORBOARD).rglob("events.out.tfevents.*")}
    assert len(folders) == 1 and not (run / "checkpoints").exists()
    events = EventAccumulator(str(folders.pop())).Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3]
    assert {"train/tokens_per_second", "train/padding", "train/peak_memory_gb"} <= set(events.Tags()["scalars"])
    text = events.Tensors("args/text_summary")[0].tensor_proto.string_val[0].decode()
    assert f'"run_name": "{recipe.name}"' in text

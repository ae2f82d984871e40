"""The data `train --nproc N` prepares once and hands to its processes reads back as it was:
the tokenized splits, the tokenizer, the report and the rest, for each kind of task."""
from __future__ import annotations

from pathlib import Path

import pytest

from adapters_sft import launch
from adapters_sft.cli.main import main
from adapters_sft.data import handoff
from adapters_sft.preflight import preflight


def same(a, b) -> None:
    assert a.train.to_list() == b.train.to_list()
    assert (a.eval is None and b.eval is None) or a.eval.to_list() == b.eval.to_list()
    assert (a.report, a.chat, a.labels, a.batching, a.eval_rows) == \
        (b.report, b.chat, b.labels, b.batching, b.eval_rows)
    text = "<|im_start|>user\nwhat is a<|im_end|>"
    assert a.tokenizer(text).input_ids == b.tokenizer(text).input_ids
    assert (a.tokenizer.pad_token, a.tokenizer.chat_template) == (b.tokenizer.pad_token, b.tokenizer.chat_template)


@pytest.mark.parametrize("kind", ["sft", "classification"])
def test_prepared_data_reads_back_as_it_was(kind, tiny_recipe, cls_recipe, tmp_path):
    recipe = tiny_recipe("lora") if kind == "sft" else cls_recipe("lora")
    ready = preflight(recipe, echo=lambda line: None)
    handoff.save(ready.splits, ready.prepared, tmp_path)
    same(handoff.load(tmp_path), ready.prepared)
    assert handoff.load_splits(tmp_path) == ready.splits


def test_the_launcher_hands_its_prepared_data_to_the_processes(tiny_recipe, monkeypatch):
    recipe = tiny_recipe("lora")
    seen = {}

    def fake_launch(nproc, argv, nnodes, node_rank, endpoint, extra_env):
        folder = Path(extra_env[handoff.ENV])
        seen["argv"], seen["prepared"] = argv, handoff.load(folder)
        seen["splits"] = handoff.load_splits(folder)
        return 0

    monkeypatch.setattr(launch, "_launch", fake_launch)
    assert main(["train", recipe.source, "--nproc", "2"]) == 0
    assert seen["argv"][:2] == ["train", recipe.source]
    ready = preflight(recipe, echo=lambda line: None)
    same(seen["prepared"], ready.prepared)
    assert seen["splits"] == ready.splits
    # a process started by it reads the folder instead of preparing (only with a world size)
    monkeypatch.setenv(handoff.ENV, "/nowhere")
    assert handoff.handed() is None
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert handoff.handed() == Path("/nowhere")


def test_a_launched_process_reads_no_data_file(tiny_recipe, tmp_path, monkeypatch):
    """The rows come from the launcher's folder: the data files could be gone by then."""
    import shutil

    data = tmp_path / "train.jsonl"
    shutil.copy(tiny_recipe("lora").data.train, data)
    recipe = tiny_recipe("lora", f"data.train={data}")
    ready = preflight(recipe, echo=lambda line: None)
    (tmp_path / "handed").mkdir()
    handoff.save(ready.splits, ready.prepared, tmp_path / "handed")
    data.unlink()
    # as in a process of a launch (handed() itself is tested above; a real world size would
    # need the processes' rendezvous)
    monkeypatch.setattr(handoff, "handed", lambda: tmp_path / "handed")
    again = preflight(recipe, echo=lambda line: None)
    assert again.splits == ready.splits
    same(again.prepared, ready.prepared)

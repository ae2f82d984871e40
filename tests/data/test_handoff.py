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
    _, prepared = preflight(recipe, echo=lambda line: None)
    handoff.save(prepared, tmp_path)
    same(handoff.load(tmp_path), prepared)


def test_the_launcher_hands_its_prepared_data_to_the_processes(tiny_recipe, monkeypatch):
    recipe = tiny_recipe("lora")
    seen = {}

    def fake_launch(nproc, argv, nnodes, node_rank, endpoint, extra_env):
        folder = Path(extra_env[handoff.ENV])
        seen["argv"], seen["prepared"] = argv, handoff.load(folder)
        return 0

    monkeypatch.setattr(launch, "_launch", fake_launch)
    assert main(["train", recipe.source, "--nproc", "2"]) == 0
    assert seen["argv"][:2] == ["train", recipe.source]
    _, prepared = preflight(recipe, echo=lambda line: None)
    same(seen["prepared"], prepared)
    # a process started by it reads the folder instead of preparing (only with a world size)
    monkeypatch.setenv(handoff.ENV, "/nowhere")
    assert handoff.handed() is None
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert handoff.handed() == Path("/nowhere")

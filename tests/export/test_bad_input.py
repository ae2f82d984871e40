"""merge/export bad input: one line, exit status 2, nothing written."""
from __future__ import annotations

import shutil

import pytest

from adapters_sft.cli.main import main


def _fails(argv, capsys, *needles):
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.fixture
def lora_run(bpe_models, train_run):
    return train_run(bpe_models["llama"], "lora")


@pytest.mark.parametrize("verb", [["merge"], ["export", "--format", "gguf"], ["export", "--format", "peft"]])
def test_unfinished_run(verb, lora_run, tmp_path, capsys):
    partial = tmp_path / ".crashed.partial"
    shutil.copytree(lora_run, partial)
    (partial / "recipe.yaml").unlink()
    _fails([verb[0], str(tmp_path / "crashed"), *verb[1:], "--out", str(tmp_path / "o")], capsys,
           "not a finished run: its training never finished", "train it first")
    assert not (tmp_path / "o").exists()


def test_missing_adapter_file(lora_run, tmp_path, capsys):
    (lora_run / "adapter" / "adapter_model.safetensors").unlink()
    _fails(["merge", str(lora_run), "--out", str(tmp_path / "o")], capsys,
           "no adapter_model.safetensors; the run did not finish saving")
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob(".o*"))


def test_corrupt_adapter_file(lora_run, tmp_path, capsys):
    weights = lora_run / "adapter" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    _fails(["merge", str(lora_run), "--out", str(tmp_path / "o")], capsys,
           "adapter_model.safetensors: unreadable", "damaged")
    assert not (tmp_path / "o").exists()


def test_base_no_longer_matches_the_adapter(lora_run, bpe_models, tmp_path, capsys):
    recipe = lora_run / "recipe.yaml"
    recipe.write_text(recipe.read_text().replace(str(bpe_models["llama"]), str(bpe_models["llama-wide"])))
    _fails(["merge", str(lora_run), "--out", str(tmp_path / "o")], capsys,
           "does not fit the base model", "size mismatch", "has the base changed?")
    assert not (tmp_path / "o").exists()


def test_head_only_weights_on_another_base(bpe_models, train_run, tmp_path, capsys):
    run = train_run(bpe_models["llama"], "head-only")
    recipe = run / "recipe.yaml"
    recipe.write_text(recipe.read_text().replace(str(bpe_models["llama"]), str(bpe_models["llama-wide"])))
    _fails(["merge", str(run), "--out", str(tmp_path / "o")], capsys, "was the run trained on another model?")


@pytest.mark.parametrize("fmt", [None, "peft", "safetensors", "gguf"])
def test_existing_out_is_refused_without_overwrite(fmt, lora_run, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    argv = ["merge", str(lora_run)] if fmt is None else ["export", str(lora_run), "--format", fmt]
    _fails([*argv, "--out", str(out)], capsys, "already exists; choose another path or add --overwrite")
    assert (out / "keep.txt").read_text() == "mine"


def test_overwrite_replaces_only_after_success(lora_run, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "old.txt").write_text("old")
    assert main(["merge", str(lora_run), "--out", str(out), "--overwrite"]) == 0
    assert not (out / "old.txt").exists() and (out / "config.json").is_file()


def test_overwrite_never_replaces_the_run_itself(lora_run, capsys):
    _fails(["merge", str(lora_run), "--out", str(lora_run), "--overwrite"], capsys,
           "holds the run or the current folder")
    assert (lora_run / "recipe.yaml").is_file()

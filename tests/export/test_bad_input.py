"""merge/export bad input: one line, exit status 2, nothing written."""
from __future__ import annotations

import shutil
import sys

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


@pytest.mark.parametrize("where", ["run", "run/adapter", "run/adapter/new", "parent"])
@pytest.mark.parametrize("verb", [["merge"], ["export", "--format", "peft"]])
def test_out_inside_or_around_a_run_is_refused(where, verb, lora_run, capsys):
    out = {"run": lora_run, "parent": lora_run.parent}.get(where, lora_run.parent / where.replace("run", lora_run.name))
    before = sorted(str(p) for p in lora_run.rglob("*"))
    _fails([verb[0], str(lora_run), *verb[1:], "--out", str(out), "--overwrite"], capsys,
           "--out: ", "choose")
    assert sorted(str(p) for p in lora_run.rglob("*")) == before  # the run is untouched
    from adapters_sft.run_reader import load_run

    assert load_run(lora_run)[0] is not None


def test_out_over_an_interrupted_training_run_is_refused(lora_run, tmp_path, capsys):
    from adapters_sft import checkpoints
    from tests.test_checkpoints import _folder

    ckpt = _folder(tmp_path / ".stopped.partial" / "checkpoints", 2)  # complete, real headers
    _fails(["merge", str(lora_run), "--out", str(tmp_path / "stopped")], capsys,
           "is the output_dir of an interrupted training run")
    assert checkpoints.problem(ckpt) is None


@pytest.mark.parametrize("verb", [["merge", "--out", "o"], ["export", "--format", "gguf", "--out", "o"],
                                  ["generate", "--prompt", "hi"], ["eval"]])
def test_a_run_whose_base_moved(verb, bpe_models, train_run, tmp_path, capsys, monkeypatch):
    base = tmp_path / "base"
    shutil.copytree(bpe_models["llama"], base)
    run = train_run(base, "lora")
    base.rename(tmp_path / "moved")
    monkeypatch.chdir(tmp_path)
    _fails([verb[0], str(run), *verb[1:]], capsys, f"{run / 'recipe.yaml'}: model '{base}'",
           "no longer exists", "set `model:` in that file")
    assert not (tmp_path / "o").exists()
    # the adapter alone needs no base: PEFT export still works
    assert main(["export", str(run), "--format", "peft", "--out", str(tmp_path / "p")]) == 0


@pytest.mark.parametrize("damaged", ["weights", "tokenizer"])
def test_a_damaged_run_file(damaged, bpe_models, train_run, tmp_path, capsys):
    run = train_run(bpe_models["llama"], "full")
    target = next((run / "weights").glob("*.safetensors")) if damaged == "weights" else run / "tokenizer" / "tokenizer.json"
    target.write_bytes(target.read_bytes()[:64])
    folder = run / "weights" if damaged == "weights" else run / "tokenizer"
    for argv in (["merge", str(run), "--out", str(tmp_path / "o")], ["generate", str(run), "--prompt", "hi"]):
        _fails(argv, capsys, f"{folder}:", "damaged", "restore the run folder from a copy")
    assert not (tmp_path / "o").exists()


def test_a_k_quant_without_llama_cpp_names_the_extra(lora_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # find_spec now says: not installed
    _fails(["export", str(lora_run), "--format", "gguf", "--outtype", "q4_k_m", "--out", str(tmp_path / "o")],
           capsys, "--outtype q4_k_m: k-quants are made by llama.cpp's own quantizer",
           "pip install 'adapters-sft[llamacpp]'")
    assert not (tmp_path / "o").exists()

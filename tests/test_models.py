"""Model loading says every expected failure in one line naming the file and the fix: a
damaged config, weights or tokenizer, a path that does not exist, a near miss of an alias."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Callable

import pytest

from adapters_sft.cli.main import main
from adapters_sft.errors import UserError


def _config(field: str, value: object) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        if value is None:
            del config[field]
        else:
            config[field] = value
        (folder / "config.json").write_text(json.dumps(config))
    return damage


def _truncate(name: str) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: len(data) // 2])
    return damage


def _overwrite(name: str, text: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_text(text)


# (damage, the file the message must name, words from its fix)
DAMAGES = {
    "config field of the wrong type": (_config("num_hidden_layers", "two"), "config.json", "num_hidden_layers"),
    "config not JSON": (_overwrite("config.json", '{"model_type": "llama",'), "config.json", "not a valid JSON"),
    "config without model_type": (_config("model_type", None), "config.json", "model_type"),
    "weights truncated": (_truncate("model.safetensors"), "weights in", "download or save the model again"),
    "weights not safetensors": (_overwrite("model.safetensors", "\0" * 64), "weights in", "damaged"),
    "tokenizer not JSON": (_overwrite("tokenizer.json", "{not json"), "tokenizer in", "tokenizer files"),
}


@pytest.fixture(params=list(DAMAGES))
def damaged(request, tmp_path: Path, tiny_model_dir: Path) -> tuple[Path, str, str]:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    damage, names, fix = DAMAGES[request.param]
    damage(folder)
    return folder, names, fix


def _one_line(argv: list[str], capsys) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_damaged_model_generate(damaged, capsys):
    folder, names, fix = damaged
    err = _one_line(["generate", str(folder), "--prompt", "hi", "--max-new-tokens", "1"], capsys)
    assert str(folder) in err and names in err and fix in err, err


def test_damaged_model_train_leaves_nothing(damaged, tmp_path, tiny_data, capsys):
    folder, names, fix = damaged
    out = tmp_path / "run"
    err = _one_line(["train", "smollm2-135m/lora", f"model={folder}", f"data.train={tiny_data['train']}",
                     f"data.eval={tiny_data['eval']}", "training.max_steps=1", f"output_dir={out}"], capsys)
    assert str(folder) in err and names in err, err
    assert not out.exists() and not list(tmp_path.glob(".run*"))


def test_near_miss_of_an_alias_is_refused_before_the_hub(capsys):
    start = time.monotonic()
    err = _one_line(["generate", "smollm2-135m", "--prompt", "hi"], capsys)
    assert "did you mean 'smollm2-135m-instruct'?" in err, err
    assert time.monotonic() - start < 30  # not after the hub's retries


@pytest.mark.parametrize("ref", ["./no-such-model", "/no/such/model", "~/no-such-model", "a/b/c"])
def test_a_path_that_does_not_exist_is_not_taken_for_a_hub_id(ref):
    from adapters_sft.models import resolve_model

    with pytest.raises(UserError, match=f"model: '{ref}' does not exist; give a model folder"):
        resolve_model(ref)


@pytest.mark.parametrize("ref", ["gpt2", "HuggingFaceTB/SmolLM2-135M-Instruct", "smollm2-135m-instruct-x/y"])
def test_hub_ids_pass_through(ref):
    from adapters_sft.models import resolve_model

    assert resolve_model(ref) == ref


def test_a_conversion_another_process_finished_first_is_kept(tmp_path):
    """Processes of one run started by torchrun on a fresh machine each convert the bundled
    model; the one that finishes second keeps the first one's copy instead of failing."""
    from adapters_sft.models import place

    out, ours = tmp_path / "model", tmp_path / ".model-tmp"
    for folder, text in ((out, "first"), (ours, "second")):
        folder.mkdir()
        (folder / "config.json").write_text(text)
    place(ours, out)
    assert (out / "config.json").read_text() == "first" and not ours.exists()
    lone = tmp_path / ".lone"
    lone.mkdir()
    (lone / "config.json").write_text("only")
    place(lone, tmp_path / "fresh")  # nobody was first: ours is renamed into place
    assert (tmp_path / "fresh" / "config.json").read_text() == "only"
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "weights").write_text("x")  # not a finished conversion: not kept
    (lone := tmp_path / ".again").mkdir()
    with pytest.raises(OSError):
        place(lone, tmp_path / "half")

"""Resume refuses what would not continue the same computation, one line each (exit 2,
nothing touched), falls back past unfinished checkpoints, and `train` points at `resume`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import adapters_sft.trainer as trainer_module
from adapters_sft import checkpoints
from adapters_sft.cli.main import main
from adapters_sft.errors import UserError
from adapters_sft.resume import differences, resume
from adapters_sft.trainer import train


@pytest.fixture
def crashed(tiny_recipe, tiny_data, monkeypatch, tmp_path):
    """A run that crashed at step 5 of 6, with checkpoints at steps 2 and 4."""
    from transformers import TrainerCallback

    class Crash(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.global_step == 4:
                raise RuntimeError("power cut")

    build = trainer_module.build_trainer

    def build_and_crash(*args: Any, **kwargs: Any) -> Any:
        built = build(*args, **kwargs)
        built[0].add_callback(Crash())
        return built

    data = tmp_path / "train.jsonl"  # a copy the tests may edit, named relative to the cwd
    data.write_text(tiny_data["train"].read_text())
    monkeypatch.chdir(tmp_path)
    overrides = ("checkpoint.every_steps=2", "training.max_steps=6", "data.train=train.jsonl")
    recipe = tiny_recipe("lora", *overrides)
    lines: list[str] = []
    monkeypatch.setattr(trainer_module, "build_trainer", build_and_crash)
    with pytest.raises(RuntimeError, match="power cut"):
        train(recipe, echo=lines.append)
    monkeypatch.setattr(trainer_module, "build_trainer", build)
    assert lines[-1] == (f"the run stopped (RuntimeError); its checkpoint at step 4 is kept: "
                         f"continue with 'adapters-sft resume {tmp_path / 'run'}'")
    return tmp_path / "run", overrides


def _snapshot(partial: Path) -> dict[str, bytes]:
    return {str(p.relative_to(partial)): p.read_bytes() for p in sorted(partial.rglob("*")) if p.is_file()}


def _refused(args: list[str], capsys, *words: str) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("adapters-sft: error: "), err
    for word in words:
        assert word in err, err
    return err


def test_train_points_to_resume_and_overwrite_starts_over(crashed, tiny_recipe, capsys):
    out, overrides = crashed
    partial = out.parent / ".run.partial"
    before = _snapshot(partial)
    _refused(["train", str(out.parent / "lora.yaml"), *overrides], capsys,
             "has an interrupted run with a checkpoint at step 4", f"adapters-sft resume {out}",
             "overwrite=true")
    assert _snapshot(partial) == before
    result = train(tiny_recipe("lora", *overrides, "overwrite=true"), echo=lambda _: None)
    assert result.run_dir == out and not partial.exists()


def test_changed_data_is_refused(crashed, tmp_path, capsys):
    out, _ = crashed
    partial = out.parent / ".run.partial"
    before = _snapshot(partial)
    data = tmp_path / "train.jsonl"
    data.write_text(data.read_text().replace("hello", "hi", 1))  # one word of one row
    _refused(["resume", str(out)], capsys, "checkpoint-4: the data changed since the checkpoint",
             "data.train rows hash", "--force")
    assert _snapshot(partial) == before and not out.exists()


def test_changed_recipe_is_refused_unless_forced(crashed, capsys):
    out, _ = crashed
    _refused(["resume", str(out), "training.learning_rate=0.5"], capsys,
             "the recipe changed since the checkpoint (training.learning_rate: 0.01 -> 0.5)")
    lines: list[str] = []
    result = resume(out, ["training.learning_rate=0.5"], force=True, echo=lines.append)
    assert any(line.startswith("warning: resuming although the recipe changed") for line in lines)
    assert result.run_dir == out and (out / "adapter").is_dir()


def test_unfinished_newest_checkpoint_falls_back(crashed):
    out, _ = crashed
    root = out.parent / ".run.partial" / "checkpoints"
    (root / "checkpoint-5").mkdir()
    (root / "checkpoint-5" / checkpoints.TRAINED).write_bytes(b"half")
    lines: list[str] = []
    resume(out, echo=lines.append)
    assert "warning: skipping checkpoint-5: no completion marker (cut off while it was written)" in lines
    assert any(line.startswith("resuming 'lora' from step 4") for line in lines)
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()
             if "loss" in json.loads(x)]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_nothing_to_resume(tiny_recipe, tmp_path):
    with pytest.raises(UserError, match="no interrupted run here"):
        resume(tmp_path / "nope")
    result = train(tiny_recipe("lora"), echo=lambda _: None)
    with pytest.raises(UserError, match="this run finished; there is nothing to resume"):
        resume(result.run_dir)


def test_differences_name_versions_device_and_processes():
    base = {"versions": {"torch": "2.13.0", "trl": "1.16.0"}, "world_size": 1, "device": "cpu",
            "data": {"train": "a", "eval": None}, "strategy": "lora", "recipe": {"seed": 1}}
    assert differences(base, base) == []
    now = {**base, "versions": {"torch": "2.13.0", "trl": "1.17.0"}, "world_size": 2, "device": "cuda"}
    assert differences(base, now) == [
        "library versions changed since the checkpoint (trl 1.16.0 -> 1.17.0)",
        "the device changed since the checkpoint (cpu -> cuda), and with it the dtype and kernels",
        "the number of processes changed since the checkpoint (1 -> 2), which changes the batches"]


@pytest.mark.parametrize("override, words", [
    ("training.save_only_model=true", "checkpoints would lack the optimizer"),
    ("training.save_strategy=best", "use steps or epoch"),
    ("training.save_total_limit=3", "set by the recipe's 'checkpoint.keep' key instead")])
def test_settings_that_break_resume_are_refused(override, words, tiny_recipe, tmp_path):
    from adapters_sft.training.args import training_args

    with pytest.raises(UserError, match=f"command line: training.{override.split('=')[0][9:]}: .*{words}"):
        training_args(tiny_recipe("lora", override), tmp_path)


def test_damaged_checkpoints_are_skipped_naming_the_file(crashed, capsys):
    """A marker of the wrong shape and weights whose header is damaged (same size) are skipped
    like a cut-off checkpoint: resume falls back to the one before; with none left, the
    warnings name each damaged file and the refusal is one line."""
    out, _ = crashed
    root = out.parent / ".run.partial" / "checkpoints"
    newest = root / "checkpoint-4"
    weights = newest / checkpoints.TRAINED
    data = bytearray(weights.read_bytes())
    data[8:16] = b"\xff" * 8  # inside the JSON header: same size, bad header
    weights.write_bytes(bytes(data))
    lines: list[str] = []
    resume(out, echo=lines.append)
    assert any("skipping checkpoint-4: trained.safetensors is damaged" in line for line in lines), lines
    assert any(line.startswith("resuming 'lora' from step 2") for line in lines)


def test_no_complete_checkpoint_left_names_what_is_damaged(crashed, capsys):
    out, _ = crashed
    root = out.parent / ".run.partial" / "checkpoints"
    (root / "checkpoint-4" / checkpoints.MARKER).write_text("[1, 2]")
    state = root / "checkpoint-2" / "optimizer.pt"
    state.write_bytes(b"\0" * state.stat().st_size)
    assert main(["resume", str(out)]) == 2
    captured = capsys.readouterr()
    assert "checkpoint-4: its checkpoint.json is not what adapters-sft writes" in captured.out
    assert "checkpoint-2: optimizer.pt is damaged" in captured.out
    assert captured.err.count("\n") == 1 and "no complete checkpoint" in captured.err


@pytest.mark.parametrize("fingerprint", ['{"world_size": 1, "data": ', "[1, 2]", '{"data": [], "versions": 5}'])
def test_a_damaged_fingerprint_is_one_line_and_force_goes_on(fingerprint, crashed, capsys):
    from adapters_sft.rundir import FINGERPRINT

    out, _ = crashed
    (out.parent / ".run.partial" / FINGERPRINT).write_text(fingerprint)
    assert main(["resume", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("--force" in err), err
    assert main(["resume", str(out), "--force"]) == 0
    assert (out / "adapter").is_dir()


def test_a_run_with_a_relative_output_dir_resumes_from_another_folder(crashed, monkeypatch, tmp_path):
    """The saved output_dir is relative to where training started ('run' here, the fixture's
    cwd); resume names the run from wherever it is typed."""
    out, _ = crashed
    saved = out.parent / ".run.partial" / "recipe.yaml"
    import yaml

    body = yaml.safe_load(saved.read_text())
    body["output_dir"] = "run"
    saved.write_text(yaml.safe_dump(body))
    elsewhere = tmp_path / "elsewhere" / "deeper"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    assert main(["resume", "../../run"]) == 0
    assert (out / "adapter").is_dir()

"""Exclusive output folders and guards that run before anything is loaded or written: one
line, exit status 2, nothing created, nothing lost."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adapters_sft.cli.main import main

ROOT = Path(__file__).resolve().parent.parent


def _refused(argv: list[str], capsys, *words: str) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    return err


@pytest.fixture
def recipe_file(tmp_path, tiny_model_dir, tiny_data):
    def make(steps: int = 3, out: str = "run") -> Path:
        body = {"model": str(tiny_model_dir), "strategy": {"name": "lora"},
                "data": {"train": str(tiny_data["train"]), "max_length": 64},
                "training": {"max_steps": steps, "per_device_train_batch_size": 4,
                             "logging_steps": 1},
                "output_dir": str(tmp_path / out)}
        path = tmp_path / "r.yaml"
        path.write_text(json.dumps(body))
        return path
    return make


def test_a_second_train_into_the_same_output_dir_is_refused_at_once(recipe_file, tmp_path, capsys):
    recipe = recipe_file(steps=400)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen([sys.executable, "-m", "adapters_sft", "train", str(recipe)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lock = tmp_path / ".run.lock"
    deadline = time.monotonic() + 120
    while not lock.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lock.exists(), first.communicate()[1][-2000:]
    started = time.monotonic()
    _refused(["train", str(recipe)], capsys,
             f"output_dir: '{tmp_path / 'run'}' is being written by another adapters-sft process "
             f"(pid {first.pid})")
    assert time.monotonic() - started < 5  # refused at once, not after loading anything
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-2000:]
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
             if "loss" in json.loads(line)]
    assert steps == list(range(1, 401))  # only the first run's steps
    assert not lock.exists()


def test_a_lock_left_by_a_killed_run_does_not_block(recipe_file, tmp_path):
    (tmp_path / ".run.lock").write_text("999999")  # its process is gone: no flock is held
    assert main(["train", str(recipe_file())]) == 0
    assert (tmp_path / "run" / "adapter").is_dir()


def test_output_dir_that_cannot_be_written(recipe_file, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    _refused(["train", str(recipe_file()), f"output_dir={tmp_path / 'afile' / 'run'}"], capsys,
             "output_dir: cannot write to", "choose a writable folder")
    assert (tmp_path / "afile").read_text() == "x"


def test_output_dir_inside_a_run_is_refused_and_nothing_is_created(recipe_file, tmp_path, capsys):
    recipe = recipe_file()
    assert main(["train", str(recipe)]) == 0
    before = sorted(p.name for p in (tmp_path / "run").rglob("*"))
    _refused(["train", str(recipe), f"output_dir={tmp_path / 'run' / 'adapter' / 'x'}"], capsys,
             "is inside the run", "choose a path outside every run")
    assert sorted(p.name for p in (tmp_path / "run").rglob("*")) == before


@pytest.mark.parametrize("override, words", [
    ("training.learning_rate=-1", "training.learning_rate: must be at least 0"),
    ("training.per_device_train_batch_size=0", "must be at least 1"),
    ("training.gradient_accumulation_steps=0", "must be at least 1"),
    ("training.max_steps=0", "training.max_steps: must be at least 1, or -1"),
    ("training.num_train_epochs=0", "training.num_train_epochs: must be above 0"),
    ("training.warmup_steps=-2", "must be at least 0"),
    ("seed=-1", "seed: must be in [0, 4294967295], got -1"),
    ("data.max_length=-5", "data.max_length: must be at least 1"),
    ("checkpoint.keep=0", "checkpoint.keep: must be at least 1"),
])
def test_out_of_range_numbers_are_one_line(override, words, recipe_file, tmp_path, capsys):
    extra = ["training.max_steps=-1"] if "epochs" in override else []
    _refused(["train", str(recipe_file()), override, *extra], capsys, "command line: ", words)
    assert not (tmp_path / "run").exists() and not (tmp_path / ".run.partial").exists()


@pytest.mark.parametrize("argv, words", [
    (["generate", "x", "--prompt", "hi", "--batch-size", "0"], "--batch-size: must be at least 1"),
    (["generate", "x", "--prompt", "hi", "--max-new-tokens", "0"], "--max-new-tokens: must be at least 1"),
    (["generate", "x", "--prompt", "hi", "--temperature", "0"], "--temperature: must be above 0"),
    (["generate", "x", "--prompt", "hi", "--top-p", "1.5"], "--top-p: must be in (0, 1], got 1.5"),
    (["chat", "x", "--temperature", "-1"], "--temperature: must be above 0"),
    (["chat", "x", "--max-new-tokens", "two"], "--max-new-tokens: expected an integer, got 'two'"),
])
def test_out_of_range_options_are_one_line(argv, words, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err and err.startswith("adapters-sft: error: "), err


def test_a_moved_run_works_without_its_data_files(tmp_path, tiny_model_dir, tiny_data, monkeypatch, capsys):
    """Relative data paths are saved absolute, and the held-out rows travel with the run: after
    `mv` to another folder, with the data deleted and from another working folder, eval and
    merge read everything from the run."""
    import shutil

    import yaml

    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(tiny_data["train"], work / "train.jsonl")
    monkeypatch.chdir(work)
    body = {"model": str(tiny_model_dir), "strategy": {"name": "lora"},
            "data": {"train": "train.jsonl", "val_size": 6, "max_length": 64},
            "training": {"max_steps": 2, "per_device_train_batch_size": 4}, "output_dir": "run"}
    (work / "r.yaml").write_text(json.dumps(body))
    assert main(["train", "r.yaml"]) == 0
    saved = yaml.safe_load((work / "run" / "recipe.yaml").read_text())
    assert saved["data"]["train"] == str(work / "train.jsonl")

    moved = tmp_path / "elsewhere" / "run"
    moved.parent.mkdir()
    shutil.move(work / "run", moved)
    (work / "train.jsonl").unlink()
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["eval", str(moved)]) == 0
    report = json.loads((moved / "evals" / "heldout" / "eval.json").read_text())
    assert report["answers"]["total"] == 6 and report["tokens"] > 0
    assert main(["merge", str(moved), "--out", str(tmp_path / "merged")]) == 0
    assert "probes: 6 held-out rows" in capsys.readouterr().out


@pytest.mark.parametrize("where, words", [("missing/answers.jsonl", "does not exist"),
                                          ("afile/answers.jsonl", "does not exist (or is a file)"),
                                          (".", "is a folder")])
def test_generate_output_is_checked_before_the_model_loads(where, words, tmp_path, capsys, monkeypatch):
    (tmp_path / "afile").write_text("x")
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "hi"}\n')

    def no_load(*a, **k):
        raise AssertionError("the model loaded before --output was checked")

    monkeypatch.setattr("adapters_sft.run_reader.load_model_or_run", no_load)
    out = tmp_path / where
    _refused(["generate", "some-model", "--input", str(prompts), "--output", str(out),
              *(["--overwrite"] if where == "." else [])], capsys, "--output: ", words)


def test_read_only_folders_are_refused_before_any_work(recipe_file, read_only_dir, tmp_path, capsys,
                                                        monkeypatch):
    """train, merge, export and generate into a folder that cannot be written: one line,
    exit 2, before any model loads (for merge: before merging), nothing written."""
    assert main(["train", str(recipe_file())]) == 0
    run = tmp_path / "run"

    def no_load(*a, **k):
        raise AssertionError("a model loaded before the output folder was checked")

    for target in ("adapters_sft.models.load_model", "adapters_sft.run_reader.load_model_or_run"):
        monkeypatch.setattr(target, no_load)
    _refused(["train", str(recipe_file()), f"output_dir={read_only_dir / 'run'}"], capsys,
             f"output_dir: cannot write to '{read_only_dir}'", "choose a writable folder")
    for verb in (["merge"], ["export", "--format", "gguf"], ["export", "--format", "peft"]):
        _refused([verb[0], str(run), *verb[1:], "--out", str(read_only_dir / "out")], capsys,
                 f"--out: cannot write to '{read_only_dir}'")
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "hi"}\n')
    _refused(["generate", str(run), "--input", str(prompts), "--output", str(read_only_dir / "a.jsonl")],
             capsys, f"--output: cannot write in '{read_only_dir}'")
    assert list(read_only_dir.iterdir()) == []
    assert (run / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.parametrize("name", ["answers.jsonl", "recipe.yaml", "adapter/x.jsonl"])
def test_generate_output_inside_a_run_is_refused(name, recipe_file, tmp_path, capsys):
    assert main(["train", str(recipe_file())]) == 0
    run = tmp_path / "run"
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    _refused(["generate", str(run), "--prompt", "hi", "--output", str(run / name), "--overwrite"], capsys,
             f"--output: '{run / name}' is inside the run '{run}'")
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_a_refusal_leaves_no_new_parent_folder(recipe_file, tmp_path, capsys):
    """Folders created for the lock are removed again when nothing was put in them: a train
    refused after the lock was taken (here: its data rows are of no known format) and a block
    that raises leave no empty `new/parent/`; a committed result keeps its parent."""
    from adapters_sft.errors import UserError
    from adapters_sft.rundir import exclusive

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"neither": "messages", "nor": "text"}\n' * 8)
    out = tmp_path / "new" / "parent" / "run"
    _refused(["train", str(recipe_file()), f"data.train={bad}", f"output_dir={out}"], capsys)
    assert not (tmp_path / "new").exists()
    with pytest.raises(UserError):
        with exclusive(tmp_path / "a" / "b" / "c", "--out"):
            raise UserError("refused")
    assert not (tmp_path / "a").exists()
    (tmp_path / "kept").mkdir()
    with exclusive(tmp_path / "kept" / "x" / "y", "--out"):
        (tmp_path / "kept" / "x" / "y").mkdir()
    assert (tmp_path / "kept" / "x" / "y").is_dir()


def test_every_file_of_a_run_has_the_umasks_modes(tiny_recipe, tmp_path):
    """The weights too: transformers saves them through a private (0600) temp file."""
    from adapters_sft.trainer import train

    old = os.umask(0o022)
    try:
        run = train(tiny_recipe("full", "eval.metric=none"), echo=lambda line: None).run_dir
    finally:
        os.umask(old)
    modes = {str(p.relative_to(run)): p.stat().st_mode & 0o777 for p in run.rglob("*")}
    assert any(name.endswith(".safetensors") for name in modes)
    assert {n: m for n, m in modes.items() if m != (0o755 if (run / n).is_dir() else 0o644)} == {}
    assert run.stat().st_mode & 0o777 == 0o755


def test_saved_recipes_name_reward_files_and_reward_runs_absolutely(tmp_path, monkeypatch):
    from adapters_sft.rundir import portable_paths

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.py").write_text("def score(prompts, completions, **kw):\n    return [0.0] * len(prompts)\n")
    (tmp_path / "runs" / "rm").mkdir(parents=True)
    saved = portable_paths({"data": {}, "model": "m", "rewards": [
        "mine.py:score", {"name": "./mine.py:score", "weight": 0.5}, {"name": "run", "path": "runs/rm"},
        {"name": "exact_match", "column": "answer"}, "my_pkg.rewards:score"]})
    assert saved["rewards"] == [f"{tmp_path}/mine.py:score", {"name": f"{tmp_path}/mine.py:score", "weight": 0.5},
                                {"name": "run", "path": str(tmp_path / "runs" / "rm")},
                                {"name": "exact_match", "column": "answer"}, "my_pkg.rewards:score"]

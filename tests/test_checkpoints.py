"""Checkpoints and exact resume: a run killed with SIGKILL after a checkpoint, then resumed,
logs the same per-step losses and ends with the same trained tensors as an uninterrupted
run, bit for bit, with dropout, shuffled data over two epochs and gradient accumulation 2,
for every kind of strategy. The interrupted runs are real subprocesses (tests/stop_at.py)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from adapters_sft import checkpoints
from adapters_sft.recipe import load_recipe
from adapters_sft.resume_run import resume
from adapters_sft.trainer import train

ROOT = Path(__file__).resolve().parent.parent
STOP_AT = str(Path(__file__).resolve().parent / "stop_at.py")

# freeze thaws its second block at step 4, after the checkpoint resumed from (step 3)
STRATEGIES = {"lora": {}, "qlora": {}, "full": {}, "adapter": {},
              "freeze": {"trainable_layers": 2, "unfreeze_every": 2}}


@pytest.fixture
def write_recipe(tmp_path, tiny_model_dir, tiny_data):
    def make(name: str, out: str, strategy: str = "lora", **opts) -> Path:
        body = {"model": str(tiny_model_dir), "strategy": {"name": strategy, **opts},
                "data": {"train": str(tiny_data["train"]), "max_length": 64},
                # 32 rows, 4 x 2 per optimizer step: 4 steps an epoch, 8 steps = 2 shuffled epochs
                "training": {"max_steps": 8, "per_device_train_batch_size": 4,
                             "gradient_accumulation_steps": 2, "learning_rate": 1e-2,
                             "logging_steps": 1, "dropout": 0.1},
                "checkpoint": {"every_steps": 3}, "output_dir": str(tmp_path / out)}
        path = tmp_path / f"{name}.yaml"
        path.write_text(json.dumps(body))
        return path
    return make


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=600)


def logged(run: Path) -> list[tuple]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"], r["grad_norm"], r["learning_rate"], r.get("num_tokens"))
            for r in rows if "loss" in r]


def trained_tensors(run: Path) -> dict:
    from safetensors.torch import load_file

    out = {}
    for path in sorted(run.rglob("*.safetensors")):
        out.update({f"{path.relative_to(run)}:{k}": v for k, v in load_file(str(path)).items()})
    return out


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_sigkill_then_resume_equals_uninterrupted(strategy, write_recipe, tmp_path):
    opts = STRATEGIES[strategy]
    whole = train(load_recipe(str(write_recipe("whole", "whole", strategy, **opts))), echo=lambda _: None)
    recipe = write_recipe("cut", "cut", strategy, **opts)
    killed = run_cli(STOP_AT, "6", "KILL", "train", str(recipe))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    partial = tmp_path / ".cut.partial"
    assert not (tmp_path / "cut").exists()
    found, _ = checkpoints.latest(partial / "checkpoints")
    assert found is not None and found.name == "checkpoint-3"
    assert len(logged(partial)) == 5  # steps 4 and 5 were logged after the checkpoint

    result = resume(tmp_path / "cut", echo=lambda _: None)
    assert logged(result.run_dir) == logged(whole.run_dir)
    assert [s for s, *_ in logged(result.run_dir)] == list(range(1, 9))
    a, b = trained_tensors(whole.run_dir), trained_tensors(result.run_dir)
    assert a.keys() == b.keys() and a
    for key in a:
        assert a[key].dtype == b[key].dtype and bool((a[key] == b[key]).all()), key
    assert not (result.run_dir / "checkpoints").exists()  # crash insurance, gone once complete


def test_checkpoint_holds_only_what_trained(tiny_recipe, tmp_path):
    from safetensors import safe_open

    recipe = tiny_recipe("lora", "checkpoint.every_steps=2", "training.max_steps=3",
                         "training.save_strategy=steps", "training.save_steps=100")
    result = train(recipe, echo=lambda _: None)
    folder = result.run_dir / "checkpoints" / "checkpoint-2"  # kept: save_strategy was asked for
    assert checkpoints.problem(folder) is None
    with safe_open(str(folder / checkpoints.TRAINED), "pt") as f:
        names = set(f.keys())
    trainable = {n for n, p in result.trainer.model.named_parameters() if p.requires_grad}
    assert names == trainable and all("lora_" in n for n in names)
    assert not list(folder.glob("model*.safetensors")) and not (folder / "adapter_model.safetensors").exists()
    assert {"optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json"} <= {p.name for p in folder.iterdir()}


@pytest.mark.parametrize("sig, code", [("INT", 130), ("TERM", 143)])
def test_signal_saves_a_checkpoint_and_says_how_to_resume(sig, code, write_recipe, tmp_path):
    recipe = write_recipe("sig", "sig")
    body = json.loads(recipe.read_text())
    body["checkpoint"] = {"every_steps": None, "every_minutes": None}  # only the signal saves
    recipe.write_text(json.dumps(body))
    stopped = run_cli(STOP_AT, "3", sig, "train", str(recipe))
    assert stopped.returncode == code, stopped.stderr[-2000:]
    last = stopped.stderr.strip().splitlines()[-1]
    assert last.startswith(f"adapters-sft: stopped by SIG{sig} at step 3") and "Traceback" not in stopped.stderr
    assert f"adapters-sft resume {tmp_path / 'sig'}" in last
    assert not (tmp_path / "sig").exists()
    found, _ = checkpoints.latest(tmp_path / ".sig.partial" / "checkpoints")
    assert found is not None and found.name == "checkpoint-3"
    if sig == "TERM":
        return
    resumed = run_cli("-m", "adapters_sft", "resume", str(tmp_path / "sig"))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming 'sig' from step 3" in resumed.stdout
    whole = train(load_recipe(str(write_recipe("whole", "whole"))), echo=lambda _: None)
    assert logged(tmp_path / "sig") == logged(whole.run_dir)


def _folder(root: Path, step: int, complete: bool = True, size: int = 4) -> Path:
    folder = root / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / checkpoints.TRAINED).write_bytes(b"x" * size)
    if complete:
        checkpoints._mark(folder, {"step": step})
    return folder


def test_latest_skips_unfinished_and_damaged(tmp_path):
    _folder(tmp_path, 2)
    damaged = _folder(tmp_path, 4)
    (damaged / checkpoints.TRAINED).write_bytes(b"x")  # cut short after the marker
    _folder(tmp_path, 6, complete=False)
    found, skipped = checkpoints.latest(tmp_path)
    assert found == tmp_path / "checkpoint-2"
    assert skipped == ["checkpoint-6: no completion marker (cut off while it was written)",
                       "checkpoint-4: trained.safetensors has 1 bytes, the marker says 4"]


def test_rotate_keeps_the_newest_complete_and_the_best(tmp_path):
    for step in (1, 2, 3, 4):
        _folder(tmp_path, step)
    _folder(tmp_path, 5, complete=False)  # being written now: untouched
    _folder(tmp_path, 0, complete=False)  # a leftover older than complete ones: removed
    checkpoints.rotate(tmp_path, keep=2, protect=str(tmp_path / "checkpoint-1"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-1", "checkpoint-3",
                                                          "checkpoint-4", "checkpoint-5"]


def test_section_errors():
    from adapters_sft.errors import UserError

    for key, value, words in (("every_steps", 0, "at least 1"), ("every_minutes", -1, "above 0"),
                              ("keep", 0, "at least 1")):
        with pytest.raises(UserError, match=f"checkpoint.{key}: must be {words}"):
            checkpoints.CheckpointSection(**{key: value})

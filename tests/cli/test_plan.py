"""`adapters-sft plan`: the term table and verdict from config.json alone (no weights load),
the changes that would fit, and `train` printing the verdict and refusing what cannot fit."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from adapters_sft.cli.main import main
from adapters_sft.plan import target as plan_target

CONFIGS = Path(__file__).resolve().parents[2] / "adapters_sft" / "plan" / "configs"
TERMS = ("base weights", "trainable parameters", "gradients", "optimizer states", "activations",
         "backward peak", "tensors at peak")


@pytest.fixture
def no_weights(monkeypatch):
    """Loading any weights fails the test."""
    import transformers

    def refuse(*args, **kwargs):
        raise AssertionError("plan loaded weights")

    monkeypatch.setattr(transformers.PreTrainedModel, "from_pretrained", refuse)


@pytest.fixture
def llama_8b(tmp_path) -> Path:
    folder = tmp_path / "llama-3.1-8b"
    folder.mkdir()
    shutil.copy(CONFIGS / "meta-llama--Llama-3.1-8B-Instruct.json", folder / "config.json")
    return folder


def test_plan_prints_the_terms_and_a_verdict_from_config_json_alone(llama_8b, no_weights, capsys):
    assert main(["plan", "gpu-24gb/llama-3.1-8b-qlora", f"model={llama_8b}", "--gpu", "24GB"]) == 0
    out = capsys.readouterr().out
    for term in TERMS:
        assert f"  {term} " in out
    assert "settings: bfloat16, batch 4 x 2048 tokens, gradient checkpointing on" in out
    # 4-bit layers of Llama-3.1-8B (6.98e9 numbers at ~0.52 bytes) and bf16 embeddings and head
    weights = float(out.split("base weights")[1].split("GiB")[0])
    assert 5.2 < weights < 5.4
    assert "adapters-sft: plan: needs about" in out and "on a 24 GB GPU: fits" in out


def test_plan_uses_the_shipped_config_when_the_hub_is_out_of_reach(no_weights, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["plan", "gpu-24gb/qwen2.5-7b-qlora", "--gpu", "4090"]) == 0
    assert "on RTX 4090 24 GB: fits" in capsys.readouterr().out


def test_plan_that_does_not_fit_names_changes_that_would(llama_8b, no_weights, capsys):
    assert main(["plan", "gpu-24gb/llama-3.1-8b-qlora", f"model={llama_8b}",
                 "training.gradient_checkpointing=false", "training.activation_offloading=false",
                 "--gpu", "16GB"]) == 1
    out = capsys.readouterr().out
    assert "does NOT fit" in out
    changes = [line for line in out.splitlines() if line.startswith("  would fit with ")]
    assert any("training.gradient_checkpointing=true" in c for c in changes), out
    for line in changes:  # each claimed change really fits when planned on its own
        assert float(line.split("about ")[1].split(" GiB")[0]) <= 16


def test_plan_for_several_gpus_and_a_bad_gpu_name(tiny_recipe, capsys):
    recipe = tiny_recipe("lora")
    assert main(["plan", recipe.source, "--gpu", "t4,h100"]) == 0
    out = capsys.readouterr().out
    assert "on T4 16 GB" in out and "on H100 80 GB" in out and "settings: float16" in out
    assert main(["plan", recipe.source, "--gpu", "3070"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--gpu: unknown GPU '3070'" in err


def test_train_prints_the_verdict_and_refuses_what_cannot_fit(tiny_recipe, monkeypatch, capsys):
    recipe = tiny_recipe("lora")
    small = plan_target.Target("a test machine", 1 << 20, False, False, 0, "")
    monkeypatch.setattr(plan_target, "this_machine", lambda: small)
    assert main(["train", recipe.source]) == 2
    captured = capsys.readouterr()
    assert "does NOT fit" in captured.out and captured.err.count("\n") == 1
    assert "--ignore-plan" in captured.err and f"adapters-sft plan {recipe.source}" in captured.err
    assert not Path(recipe.output_dir).exists()  # nothing written

    assert main(["train", recipe.source, "--ignore-plan"]) == 0
    assert (Path(recipe.output_dir) / "adapter").is_dir()


def test_train_of_what_the_plan_does_not_model_goes_ahead_unplanned(cls_recipe, capsys):
    recipe = cls_recipe("lora")
    assert main(["train", recipe.source, "training.max_steps=1"]) == 0
    assert "not modelled yet); training unplanned" in capsys.readouterr().out


def test_plan_refuses_to_guess_at_full_logit_losses(tiny_recipe, capsys):
    recipe = tiny_recipe("lora")
    assert main(["plan", recipe.source, "task=orpo"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "orpo computes its loss from the full logits" in err


def test_processes_sharing_a_cpu_are_planned_together(tiny_recipe):
    from adapters_sft.plan import estimate

    recipe = tiny_recipe("lora")
    cpu = plan_target.Target("a CPU", 1 << 40, False, False, 1 << 20, "")
    one, two = estimate(recipe, cpu), estimate(recipe, cpu, processes=2)
    buckets = next(t.bytes for t in two.terms if t.name == "DDP buckets")
    gradients = next(t.bytes for t in one.terms if t.name == "trainable parameters")
    assert buckets == gradients > 0  # DDP's bucket copy of the gradients
    assert two.needed == 2 * (one.tensors + buckets + cpu.overhead)  # both in one RAM
    gpu = plan_target.named_gpu("24GB")
    assert estimate(recipe, gpu, processes=2).needed == estimate(recipe, gpu).needed + buckets
    assert "for 2 processes" in two.verdict()


def test_plan_refuses_what_it_cannot_plan(llama_8b, no_weights, capsys):
    """A GPU of no memory, and a config.json without a field the plan reads (which transformers
    would fill with its default, planning another model): one line each, naming it."""
    import json

    for gpu in ("0GB", "0.0GB", "99999GB"):
        assert main(["plan", "gpu-24gb/llama-3.1-8b-qlora", f"model={llama_8b}", "--gpu", gpu]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"--gpu {gpu}" in err
    config = json.loads((llama_8b / "config.json").read_text())
    for field in ("hidden_size", "num_hidden_layers", "intermediate_size"):
        partial = dict(config)
        del partial[field]
        (llama_8b / "config.json").write_text(json.dumps(partial))
        assert main(["plan", "gpu-24gb/llama-3.1-8b-qlora", f"model={llama_8b}", "--gpu", "24GB"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"no '{field}'" in err, err


def test_a_gpu_recipe_on_a_machine_without_one_says_so_before_anything_else(no_weights, tmp_path,
                                                                           monkeypatch, capsys):
    """Before the data is read or the model fetched: the plan line says whom the recipe is for,
    the run that cannot fit is refused, and nothing is created (no runs/gpu-24gb/)."""
    import socket

    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("asked the hub"))
    monkeypatch.chdir(tmp_path)
    data = Path(__file__).resolve().parents[2] / "adapters_sft" / "datasets" / "dates" / "train.jsonl"
    assert main(["train", "gpu-24gb/llama-3.1-8b-qlora", f"data.train={data}"]) == 2
    out, err = capsys.readouterr()
    first = out.splitlines()[0]
    assert first.startswith("adapters-sft: plan: gpu-24gb/llama-3.1-8b-qlora is a recipe for a 24 GB "
                            "GPU and this machine has no GPU ('adapters-sft plan "
                            "gpu-24gb/llama-3.1-8b-qlora --gpu 24GB' plans that card); here it needs about")
    assert "does NOT fit" in first and err.startswith("adapters-sft: error: plan: the run would need")
    assert list(tmp_path.iterdir()) == []
    # plan itself says so too, and plans the card when asked
    assert main(["plan", "gpu-2x24gb/llama-3.1-70b-qlora"]) in (0, 1)
    assert "is a recipe for 2 GPUs of 24 GB and this machine has no GPU ('adapters-sft plan " \
           "gpu-2x24gb/llama-3.1-70b-qlora --gpu 24GB --nproc 2' plans that card)" in capsys.readouterr().out

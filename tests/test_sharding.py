"""The recipe's `distributed:` section (sharding.py): its checks, the Trainer keys and load
options it becomes, refusals before any process starts, and FSDP2 training in 2 CPU processes
(gloo) with accelerate's GPU-only gate lifted (tests/shard_on_cpu.py): the sharded run trains
what an unsharded one trains, its model really is split, and a killed sharded run resumes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from adapters_sft import sharding
from adapters_sft.cli.main import main
from adapters_sft.errors import UserError
from adapters_sft.recipe import load_recipe
from adapters_sft.rundir import FINGERPRINT

HERE = Path(__file__).resolve().parent


def test_the_section_checks_its_keys(tiny_recipe):
    recipe = tiny_recipe("lora")
    assert recipe.distributed.sharding == "none" and not sharding.sharded(recipe)
    for override, says in [("distributed.sharding=fdsp", "did you mean 'fsdp'"),
                           ("distributed.cpu_offload=true", "distributed.cpu_offload: offloads split"),
                           ("distributed.wrap=[LlamaDecoderLayer]", "distributed.wrap: names FSDP"),
                           ("training.fsdp=full_shard", "set by the recipe's 'distributed.sharding'")]:
        with pytest.raises(UserError, match=says.replace("(", r"\(")):
            recipe = load_recipe(recipe.source, [override])
            from adapters_sft.training.args import training_args

            training_args(recipe)


def test_fsdp_becomes_the_trainers_fsdp2_keys(tiny_recipe):
    from adapters_sft.training.args import training_args

    recipe = tiny_recipe("lora", "distributed.sharding=fsdp", "distributed.cpu_offload=true",
                         "distributed.wrap=[LlamaDecoderLayer]", "training.gradient_checkpointing=true")
    args = training_args(recipe)
    assert args.fsdp and args.fsdp_config["version"] == 2
    assert args.fsdp_config["cpu_offload"] and args.fsdp_config["transformer_layer_cls_to_wrap"] == ["LlamaDecoderLayer"]
    # recomputation is FSDP's own, not the model's (transformers refuses both at once)
    assert args.fsdp_config["activation_checkpointing"] and not args.gradient_checkpointing
    assert args.fsdp_plugin_args["cpu_ram_efficient_loading"] is True


def test_zero3_is_a_deepspeed_config_the_trainer_fills_in():
    config = sharding.deepspeed_config(3, offload=True)
    zero = config["zero_optimization"]
    assert zero["stage"] == 3 and zero["offload_param"]["device"] == "cpu"
    assert zero["stage3_gather_16bit_weights_on_model_save"]
    assert config["gradient_accumulation_steps"] == "auto"  # the Trainer's value, never a second one
    assert "offload_param" not in sharding.deepspeed_config(2, offload=True)["zero_optimization"]


def test_loading_for_fsdp_qlora_stores_4bit_weights_as_the_compute_dtype(tiny_recipe):
    from adapters_sft.loading import build_strategy, model_load_kwargs

    recipe = tiny_recipe("qlora", "distributed.sharding=fsdp")
    kwargs = sharding.load_values(recipe, model_load_kwargs(recipe, build_strategy(recipe)))
    assert "device_map" not in kwargs  # the first process's CPU copy is split, no GPU holds it all
    assert kwargs["quantization_config"].bnb_4bit_quant_storage == kwargs["dtype"]
    plain = tiny_recipe("qlora")
    assert "device_map" in model_load_kwargs(plain, build_strategy(plain))


def test_what_cannot_work_is_refused_in_one_line(tiny_recipe, monkeypatch, capsys):
    recipe = tiny_recipe("lora", "distributed.sharding=fsdp")
    # on a CPU: accelerate would train unsharded, so it is refused before any process starts
    assert main(["train", recipe.source, "distributed.sharding=fsdp", "--nproc", "2"]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "needs CUDA GPUs" in captured.err
    assert "training in 2 processes" not in captured.out
    monkeypatch.setattr(sharding, "can_shard_here", lambda: True)
    with pytest.raises(UserError, match="8-bit weights cannot be split"):
        sharding.check(tiny_recipe("qlora", "distributed.sharding=fsdp", bits=8))
    sharding.check(tiny_recipe("qlora", "distributed.sharding=fsdp"))  # 4-bit: FSDP-QLoRA
    from adapters_sft.sharding import check_recipe

    with pytest.raises(UserError, match="training.mlp_tile_tokens: the tiled MLP is proven"):
        check_recipe(tiny_recipe("lora", "distributed.sharding=fsdp", "training.mlp_tile_tokens=64"), 2,
                     launching=True)
    if sharding.importlib.util.find_spec("deepspeed") is None:
        with pytest.raises(UserError, match="needs DeepSpeed: run 'pip install deepspeed'"):
            sharding.check(tiny_recipe("lora", "distributed.sharding=zero3"))
    # a sharded run outside a launcher (the Python API in one plain process)
    from adapters_sft.trainer import train

    with pytest.raises(UserError, match="runs in processes started by a launcher"):
        train(recipe, echo=lambda line: None)
    assert not Path(recipe.output_dir).exists()


def test_a_trainer_that_did_not_shard_is_refused(tiny_recipe):
    class Unsharded:
        is_fsdp_enabled = False
        is_deepspeed_enabled = False

    with pytest.raises(UserError, match="was not turned on by accelerate"):
        sharding.verify(Unsharded(), tiny_recipe("lora", "distributed.sharding=fsdp"))
    sharding.verify(Unsharded(), tiny_recipe("lora"))


# --- FSDP2 in 2 CPU processes ---------------------------------------------------------------

def sharded_train(args: list[str], tmp_path: Path, stop: tuple[str, str] | None = None) -> subprocess.CompletedProcess:
    """`adapters-sft ARGS` in 2 processes under torchrun with FSDP allowed on the CPU."""
    script = [str(HERE / "stop_at.py"), *stop] if stop else [str(HERE / "shard_on_cpu.py")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SHARD_ON_CPU": "1",
           "SHARD_REPORT": str(tmp_path / "held")}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node=2", *script, *args],
                          capture_output=True, text=True, timeout=600, env=env)


def trained(run: Path) -> dict[str, torch.Tensor]:
    files = sorted(run.glob("*/*.safetensors"))
    assert files, sorted(run.iterdir())
    return {k: v for f in files for k, v in load_file(str(f)).items()}


def assert_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()  # the gathered save holds what an unsharded save holds, no more
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-6, rtol=0), name


def assert_split(tmp_path: Path) -> None:
    """Every process held about half of every parameter while it trained."""
    for rank in (0, 1):
        held = json.loads((tmp_path / f"held.{rank}.json").read_text())
        assert held and all(p["split"] for p in held.values())
        here, whole = sum(p["here"] for p in held.values()), sum(p["numel"] for p in held.values())
        assert 0.4 * whole <= here <= 0.6 * whole, (here, whole)


@pytest.mark.parametrize("strategy,opts", [("lora", {"r": 4, "dropout": 0.0}), ("qlora", {"r": 4, "dropout": 0.0})])
def test_fsdp_trains_what_one_process_with_accumulation_two_trains(strategy, opts, tiny_recipe, tmp_path):
    recipe = tiny_recipe(strategy, **opts)
    common = [recipe.source, "training.max_steps=3", "eval.metric=none", "data.packing=false"]
    done = sharded_train(["train", *common, "distributed.sharding=fsdp", f"output_dir={tmp_path / 'fsdp'}"],
                         tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "fsdp" / FINGERPRINT).read_text())["world_size"] == 2
    assert_split(tmp_path)  # qlora: the 4-bit weights too, stored as the compute dtype
    assert main(["train", *common, f"output_dir={tmp_path / 'one'}",
                 "training.gradient_accumulation_steps=2"]) == 0
    a = trained(tmp_path / "fsdp")
    assert any(t.abs().sum() > 0 for n, t in a.items() if "lora_B" in n)  # it trained
    assert_equal(a, trained(tmp_path / "one"))


def test_a_killed_fsdp_run_resumes_to_the_uninterrupted_result(tiny_recipe, tmp_path):
    recipe = tiny_recipe("full")
    common = [recipe.source, "training.max_steps=4", "eval.metric=none", "data.packing=false",
              "checkpoint.every_steps=2", "distributed.sharding=fsdp"]
    whole = sharded_train(["train", *common, f"output_dir={tmp_path / 'whole'}"], tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert_split(tmp_path)
    cut = tmp_path / "cut"
    killed = sharded_train(["train", *common, f"output_dir={cut}"], tmp_path, stop=("3", "KILL"))
    assert killed.returncode != 0 and not cut.exists()  # died at step 3, after the step-2 checkpoint
    kept = tmp_path / ".cut.partial" / "checkpoints" / "checkpoint-2"
    assert (kept / "optimizer.bin").is_file()  # FSDP's gathered optimizer state
    assert not list(kept.glob("pytorch_model_fsdp*"))  # no second copy of the model
    resumed = sharded_train(["resume", str(cut)], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming 'full' from step 2" in resumed.stdout
    a = trained(cut)
    assert_equal(a, trained(tmp_path / "whole"))
    # and what it trained is a normal full model: the tied head once, under the embedding's name
    assert "lm_head.weight" not in a and "model.embed_tokens.weight" in a
    assert main(["train", *common[:-1], f"output_dir={tmp_path / 'one'}",
                 "training.gradient_accumulation_steps=2"]) == 0
    assert_equal(a, trained(tmp_path / "one"))

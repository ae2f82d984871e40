"""Recipes: shipped ones validate, precedence defaults < YAML < CLI, errors name key and place."""
from __future__ import annotations

from pathlib import Path

import pytest

from adapters_sft.cli.main import main
from adapters_sft.errors import UserError
from adapters_sft.recipe import load_recipe, recipe_names, recipes_root
from adapters_sft.training.args import training_args


@pytest.mark.parametrize("name", recipe_names())
def test_every_shipped_recipe_validates_and_says_how_to_run_it(name, tmp_path):
    recipe = load_recipe(name)
    training_args(recipe, tmp_path, bool(recipe.data.eval or recipe.data.val_size))
    first_lines = Path(recipe.source).read_text().splitlines()[:3]
    assert any(line.startswith("# Run: adapters-sft train " + name) for line in first_lines)


def test_shipped_recipes_are_the_top_level_recipes_folder():
    """The checkout's recipes/ is what the package finds (the wheel: .ci/wheel-check), every
    YAML file in it is a name, and no second copy hides inside the package folder."""
    import adapters_sft

    top = Path(__file__).resolve().parents[1] / "recipes"
    assert recipes_root().resolve() == top
    assert recipe_names() == sorted(str(p.relative_to(top).with_suffix("")) for p in top.rglob("*.yaml"))
    assert len(recipe_names()) >= 19
    assert not (Path(adapters_sft.__file__).parent / "recipes").exists()


def test_ships_every_strategy_for_smollm2_and_the_gpu_recipes():
    names = set(recipe_names())
    assert {f"smollm2-135m/{s}" for s in ("head-only", "full", "lora", "qlora", "adapter")} <= names
    gpu = {n: load_recipe(n) for n in names if n.startswith("gpu-24gb/")}
    assert {r.model for r in gpu.values()} >= {"meta-llama/Llama-3.1-8B-Instruct",
                                               "Qwen/Qwen2.5-7B-Instruct",
                                               "mistralai/Mistral-7B-Instruct-v0.3"}


def test_precedence_defaults_then_yaml_then_command_line(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("model: m\nstrategy: {name: lora, r: 8}\ndata: {train: t.jsonl}\n")
    assert load_recipe(str(path)).strategy.alpha == 32  # default
    assert load_recipe(str(path)).strategy.r == 8  # YAML over default
    over = load_recipe(str(path), ["strategy.r=4", "training.max_steps=7", "output_dir=o"])
    assert (over.strategy.r, over.training["max_steps"], over.output_dir) == (4, 7, "o")
    assert load_recipe(str(path)).output_dir == "runs/r"


def test_unknown_key_names_file_line_and_suggests(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("model: m\nstrategy:\n  name: lora\n  rr: 8\ndata: {train: t.jsonl}\n")
    with pytest.raises(UserError, match=rf"^{path}:4: unknown key 'strategy.rr' \(did you mean 'r'\?\)"):
        load_recipe(str(path))


def test_a_misspelled_top_level_key_is_named_not_the_section_it_missed(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("model: m\nstratgy:\n  name: lora\ndata: {train: t.jsonl}\n")
    with pytest.raises(UserError, match=rf"^{path}:2: unknown key 'stratgy' \(did you mean 'strategy'\?\)"):
        load_recipe(str(path))


@pytest.mark.parametrize("override, suggestion", [
    ("strategy.rank=8", "'r'"), ("strategy.lora_r=8", "'r'"), ("strategy.lora_alpha=8", "'alpha'"),
    ("lora_alpha=8", "'strategy.alpha'"), ("lr=1e-4", "'training.learning_rate'"),
    ("max_seq_length=256", "'data.max_length'"), ("base_model=x", "'model'")])
def test_names_from_other_tools_get_this_tools_key(override, suggestion):
    key = override.split("=")[0]
    with pytest.raises(UserError, match=rf"unknown key '{key}' \(did you mean {suggestion}\? that is its name here\)"):
        load_recipe("smollm2-135m/lora", [override])


@pytest.mark.parametrize("key, right", [("lr", "learning_rate"), ("epochs", "num_train_epochs"),
                                        ("batch_size", "per_device_train_batch_size")])
def test_training_aliases_get_the_trainer_key(key, right):
    recipe = load_recipe("smollm2-135m/lora", [f"training.{key}=3"])
    with pytest.raises(UserError, match=rf"training\.{key}: not an option of SFTConfig or ours \(did you mean '{right}'\? that is its name here\)"):
        training_args(recipe, Path("x"))


def test_wrong_type_on_the_command_line_is_named():
    with pytest.raises(UserError, match=r"^command line: strategy\.r: expected int, got 'eight'"):
        load_recipe("smollm2-135m/lora", ["strategy.r=eight"])


def test_unknown_training_key_is_checked_against_sftconfig():
    recipe = load_recipe("smollm2-135m/lora", ["training.max_stpes=3"])
    with pytest.raises(UserError, match=r"training\.max_stpes: not an option of SFTConfig or ours \(did you mean 'max_steps'\?\)"):
        training_args(recipe, Path("x"))


def test_cp_copy_runs_unchanged(tmp_path, capsys):
    dest = tmp_path / "mine.yaml"
    assert main(["cp", "smollm2-135m/lora", str(dest)]) == 0
    assert f"# Run: adapters-sft train {dest}" in dest.read_text()
    copy, shipped = load_recipe(str(dest)), load_recipe("smollm2-135m/lora")
    assert copy.to_dict() | {"output_dir": ""} == shipped.to_dict() | {"output_dir": ""}
    assert main(["cp", "smollm2-135m/lora", str(dest)]) == 2  # never overwrites silently
    assert "already exists" in capsys.readouterr().err


def test_yaml_1_2_booleans_keep_no_and_off_as_strings(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("model: m\nstrategy: {name: lora}\ndata: {train: t.jsonl}\n"
                    "training: {save_strategy: no}\noverwrite: true\n")
    recipe = load_recipe(str(path), ["training.eval_strategy=no", "training.report_to=off"])
    assert recipe.training == {"save_strategy": "no", "eval_strategy": "no", "report_to": "off"}
    assert recipe.overwrite is True
    with pytest.raises(UserError, match="training.report_to: 'off' is not a reporting integration"):
        training_args(recipe, tmp_path)  # read as the string 'off', which no Trainer knows
    recipe.training["report_to"] = "none"
    training_args(recipe, tmp_path)  # SFTConfig accepts the rest


def test_exponent_floats_and_strategy_switch_from_the_command_line():
    recipe = load_recipe("smollm2-135m/lora", ["training.learning_rate=1e-4", "strategy.name=adapter",
                                               "strategy.kind=houlsby"])
    assert recipe.training["learning_rate"] == 1e-4
    assert (recipe.strategy.name, recipe.strategy.kind, recipe.strategy.reduction_factor) == ("adapter", "houlsby", 16)


def test_strategy_shorthand_accepts_dotted_overrides(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("model: m\nstrategy: lora\ndata: {train: t.jsonl}\n")
    assert load_recipe(str(path), ["strategy.r=4"]).strategy.r == 4


@pytest.mark.parametrize("override", ["eval.limit=0", "eval.batch_size=0", "eval.max_new_tokens=-1"])
def test_eval_counts_must_be_positive(override):
    with pytest.raises(UserError, match=r"must be at least 1"):
        load_recipe("smollm2-135m/lora", [override])


@pytest.mark.parametrize("text, key, lines", [
    ("model: m\nstrategy: {name: lora}\ndata: {train: t.jsonl}\nstrategy:\n  name: full\n",
     "'strategy'", "(lines 2 and 4)"),
    ("model: m\nstrategy: lora\ndata:\n  train: t.jsonl\n  max_length: 64\n  max_length: 128\n",
     "'data.max_length'", "(lines 5 and 6)")])
def test_a_key_given_twice_is_an_error_naming_both_lines(text, key, lines, tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    import re

    with pytest.raises(UserError, match=re.escape(f"{key} is given twice {lines}")):
        load_recipe(str(path))


def test_strategy_shorthand_on_the_command_line():
    recipe = load_recipe("smollm2-135m/lora", ["strategy=full"])
    assert recipe.strategy.name == "full"
    assert load_recipe("smollm2-135m/lora", ["strategy=full", "strategy.unfreeze_every=2"]).strategy.unfreeze_every == 2


def test_a_recipe_round_trips_through_a_run_directory(tmp_path):
    """What train saves as recipe.yaml loads back equal, number-like strings included."""
    from adapters_sft.rundir import write_recipe
    from adapters_sft.trainer import saved_recipe

    data = tmp_path / "1e5"
    data.write_text("")
    recipe = load_recipe("smollm2-135m/lora", [f"data.train={data}", "training.learning_rate=1e-4",
                                               "training.run_name='2e3'"])
    write_recipe(tmp_path / "recipe.yaml", saved_recipe(recipe), tmp_path / "recipe.yaml")
    again = load_recipe(str(tmp_path / "recipe.yaml"))
    assert again.to_dict() | {"versions": {}} == recipe.to_dict() | {"versions": {}}


def test_hostile_yaml_is_refused_in_one_line_naming_the_file(tmp_path, capsys):
    """A YAML alias bomb ("billion laughs") and nesting deep enough to exhaust the recursive
    composer are refused while reading, before anything expands; an ordinary alias still works."""
    from adapters_sft.cli.main import main

    rows = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        rows.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(rows) + "\n")
    deep = tmp_path / "deep.yaml"
    deep.write_text("model: " + "[" * 100_000 + "]" * 100_000 + "\n")
    for path, what in ((bomb, "expands to more than 100,000 nodes"), (deep, "nests deeper than 64 levels")):
        assert main(["validate", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(path) in err and what in err, err
    fine = tmp_path / "alias.yaml"
    fine.write_text("model: smollm2-135m-instruct\nstrategy: {name: lora, r: &r 8, alpha: *r}\n"
                    "data: {train: builtin:dates/train}\n")
    assert load_recipe(str(fine)).strategy.alpha == 8

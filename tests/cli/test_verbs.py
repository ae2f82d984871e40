"""ls / show / validate answer from the shipped recipes, without loading a model."""
from __future__ import annotations

import sys

from adapters_sft.cli.main import main


def test_ls_lists_recipes_strategies_and_aliases(capsys):
    assert main(["ls"]) == 0
    out = capsys.readouterr().out
    for name in ("smollm2-135m/lora", "gpu-24gb/llama-3.1-8b-qlora", "head-only", "full", "lora",
                 "qlora", "adapter", "smollm2-135m-instruct"):
        assert name in out


def test_ls_prints_each_recipes_whole_description(capsys):
    from adapters_sft.cli.ls import description
    from adapters_sft.recipe import recipe_names

    assert main(["ls"]) == 0
    out = capsys.readouterr().out
    for name in recipe_names():
        text = description(name)
        assert text and text[-1] in ".)", f"{name}: the description ends mid-sentence: {text!r}"
        assert f"{name}  " in out and text in out


def test_help_ls_and_show_import_no_ml_library():
    import subprocess

    code = ("import sys; from adapters_sft.cli.main import main; main(['ls']); main(['show', "
            "'smollm2-135m/qlora']); assert not {'torch', 'transformers', 'trl'} & set(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_show_prints_the_recipe_and_documents_each_option(capsys):
    assert main(["show", "smollm2-135m/qlora"]) == 0
    out = capsys.readouterr().out
    assert "# Run: adapters-sft train smollm2-135m/qlora" in out
    assert "strategy.bits (one of 4, 8, default 4)" in out and "strategy.r (int, at least 1, default 16)" in out
    assert "data.template (str, default 'auto')" in out and "data.val_size (float or null" in out
    assert "checkpoint.every_minutes (float or null, above 0, default 10.0)" in out


def test_show_reports_bad_yaml_with_its_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: m\nstrategy: [lora\n")
    assert main(["show", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:" in err and "invalid YAML" in err and err.count("\n") == 1


def test_validate_reads_the_data_and_prints_the_resolved_recipe(capsys):
    assert main(["validate", "smollm2-135m/lora", "strategy.r=4"]) == 0
    out = capsys.readouterr().out
    assert "data: 400 training rows (messages), 60 held-out rows" in out
    assert "  r: 4" in out and out.rstrip().endswith("is valid")


def test_validate_answers_without_importing_the_ml_libraries(tmp_path):
    """Once the Trainer config's schema is cached (the first validate writes it), validate
    reads the recipe, the bundled data and every key without torch, transformers or TRL."""
    import os
    import subprocess

    env = {**os.environ, "ADAPTERS_SFT_CACHE": str(tmp_path)}
    code = ("import sys; from adapters_sft.cli.main import main; "
            "assert main(['validate', 'smollm2-135m/qlora', 'training.learning_rate=1e-4']) == 0; "
            "print(sorted({'torch', 'transformers', 'trl', 'bitsandbytes'} & set(sys.modules)))")
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert list(tmp_path.glob("schemas/sft-*.json")), first.stdout
    again = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert again.stdout.strip().splitlines()[-1] == "[]", again.stdout


def test_the_cached_schema_is_the_config_class(tmp_path, monkeypatch):
    from trl import SFTConfig

    from adapters_sft.training import trainer_keys
    from adapters_sft.registry import get_task

    monkeypatch.setenv("ADAPTERS_SFT_CACHE", str(tmp_path))
    written = trainer_keys.schema(get_task("sft"))   # from the class, then cached
    read = trainer_keys.schema(get_task("sft"))      # from the cache
    assert written == read == trainer_keys.Schema.of(SFTConfig)
    assert "learning_rate" in read.fields and read.hints["max_steps"] is int

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

"""Bad input loses nothing: one line on stderr naming what, where and the fix; exit 2;
no traceback; no run directory (and no hidden partial one) left behind."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from adapters_sft.cli.main import main


def _recipe(tmp_path: Path, tiny_model_dir: Path, train: Path, **extra) -> Path:
    body = {"model": str(tiny_model_dir), "strategy": {"name": "lora"}, "data": {"train": str(train)},
            "training": {"max_steps": 1}, "output_dir": str(tmp_path / "run"), **extra}
    path = tmp_path / "r.yaml"
    path.write_text(json.dumps(body, indent=1))
    return path


def _fails(argv: list[str], capsys, tmp_path: Path, *expected: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("adapters-sft: error: "), err
    assert "Traceback" not in err
    for text in expected:
        assert text in err, err
    leftovers = [p.name for p in tmp_path.iterdir() if p.name in ("run", ".run.partial")]
    assert not leftovers, leftovers
    return err


@pytest.fixture
def good(tmp_path, tiny_model_dir, tiny_data):
    return _recipe(tmp_path, tiny_model_dir, tiny_data["train"])


def test_unknown_recipe(capsys, tmp_path):
    _fails(["train", "smollm2-135m/lroa"], capsys, tmp_path, "unknown recipe 'smollm2-135m/lroa'",
           "did you mean 'smollm2-135m/lora'", "adapters-sft ls")


def test_unknown_strategy(good, capsys, tmp_path):
    _fails(["train", str(good), "strategy.name=qlroa"], capsys, tmp_path,
           "unknown strategy 'qlroa'", "did you mean 'qlora'", "known strategies:")


def test_unknown_key_with_line(good, capsys, tmp_path):
    good.write_text(good.read_text().replace('"training": {', '"trainig": {'))
    _fails(["train", str(good)], capsys, tmp_path, f"{good}:", "unknown key 'trainig'", "did you mean 'training'")


def test_wrong_value_type(good, capsys, tmp_path):
    _fails(["train", str(good), "strategy.dropout=lots"], capsys, tmp_path,
           "command line: strategy.dropout: expected float, got 'lots'")


def test_missing_data_file(good, capsys, tmp_path):
    _fails(["train", str(good), "data.train=nowhere.jsonl"], capsys, tmp_path,
           "data.train: file 'nowhere.jsonl' not found")


def test_malformed_jsonl_lines_are_reported_with_file_and_line(tmp_path, tiny_model_dir, capsys):
    data = tmp_path / "bad.jsonl"
    row = json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "a"}]})
    data.write_text(f"{row}\n{row}\n{{not json\n{row}\n" + json.dumps({"messages": [{"role": "robot", "content": "x"}]}) + "\n")
    err = _fails(["train", str(_recipe(tmp_path, tiny_model_dir, data))], capsys, tmp_path,
                 f"{data}:3: invalid JSON", f"{data}:5: messages[0].role is 'robot'")


def test_quantized_strategy_without_bitsandbytes(good, capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import now raises ImportError
    _fails(["train", str(good), "strategy.name=qlora", "strategy.bits=8"], capsys, tmp_path,
           "strategy.bits: 8-bit loading needs bitsandbytes", "pip install bitsandbytes")


def test_bad_option_value_names_the_key(good, capsys, tmp_path):
    _fails(["train", str(good), "strategy.name=qlora", "strategy.bits=3"], capsys, tmp_path,
           "strategy.bits: expected one of 4, 8, got 3")


@pytest.mark.parametrize("override, words", [
    ("strategy.target_modules=[q_proj,nope]", "strategy.target_modules: 'nope' matches no module of the model"),
    ("strategy.target_modules=[qproj]", "(did you mean 'q_proj'?); its linear layers: "),
    ("strategy.target_modules=.*nope", "the regex '.*nope' matches no module name"),
    ("strategy.modules_to_save=[lm_haed]", "strategy.modules_to_save: 'lm_haed' matches no module of the "
                                           "model (did you mean 'lm_head'?)"),
])
def test_module_names_that_match_nothing(override, words, good, capsys, tmp_path):
    _fails(["train", str(good), override], capsys, tmp_path, words)


def test_evaluation_without_held_out_data(good, capsys, tmp_path):
    _fails(["train", str(good), "training.eval_strategy=steps", "training.eval_steps=1"], capsys, tmp_path,
           "training.eval_strategy: steps needs held-out data; set data.eval=PATH or data.val_size")


def test_report_to_an_integration_that_is_not_there(good, capsys, tmp_path):
    _fails(["train", str(good), "training.report_to=wandbb"], capsys, tmp_path,
           "training.report_to: 'wandbb' is not a reporting integration (did you mean 'wandb'?)")
    try:
        import wandb  # noqa: F401
    except ImportError:
        _fails(["train", str(good), "training.report_to=[wandb]"], capsys, tmp_path,
               "training.report_to: wandb is not installed; pip install wandb")


def test_existing_run_is_never_overwritten_silently(good, capsys, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "keep.txt").write_text("precious")
    assert main(["train", str(good)]) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "overwrite=true" in err
    assert (run / "keep.txt").read_text() == "precious"
    assert not (tmp_path / ".run.partial").exists()


def test_interrupted_training_keeps_the_old_run_and_leaves_no_partial(good, capsys, tmp_path, monkeypatch):
    assert main(["train", str(good)]) == 0
    old = (tmp_path / "run" / "recipe.yaml").read_text()

    def interrupt(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("trl.SFTTrainer.train", interrupt)
    assert main(["train", str(good), "overwrite=true", "strategy.r=4"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert (tmp_path / "run" / "recipe.yaml").read_text() == old
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".run")]


def test_overwrite_never_deletes_a_folder_that_is_not_a_run(good, capsys, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "thesis.tex").write_text("precious")
    assert main(["train", str(good), "overwrite=true"]) == 2
    assert "is not a run" in capsys.readouterr().err
    assert (tmp_path / "run" / "thesis.tex").read_text() == "precious"

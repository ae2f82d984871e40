"""`adapters-sft check`: the report says what training will see, and its fatal problems stop
`train` before any model weights load."""
from __future__ import annotations

import json
import shutil

import pytest

from adapters_sft.cli.main import main
from adapters_sft.errors import UserError
from adapters_sft.trainer import build_trainer, train

# ChatML with markers that leave the end-of-turn token outside the loss: the classic
# "never learns to stop" template.
EOS_OUTSIDE = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
               "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] }}"
               "{% endgeneration %}{% else %}{{ message['content'] }}{% endif %}{{ '<|im_end|>\n' }}"
               "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def _model_with_template(tiny_model_dir, tmp_path, template):
    from transformers import AutoTokenizer

    out = tmp_path / "model"
    shutil.copytree(tiny_model_dir, out)
    for f in out.glob("chat_template.*"):
        f.unlink()
    tok = AutoTokenizer.from_pretrained(out)
    tok.chat_template = template
    tok.save_pretrained(out)
    return out


def _check(capsys, *argv):
    code = main(["check", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_report_on_good_data(capsys, tiny_recipe):
    recipe = tiny_recipe("lora")
    code, out, err = _check(capsys, recipe.source)
    assert code == 0, err
    assert "format: messages" in out and "with generation markers added (renders identically)" in out
    assert "train: 32 rows; tokens per row min" in out and "eval: 8 rows" in out
    assert "train: data.max_length=64 truncates 0 row(s); 0 lose their whole target" in out
    assert "pad token: '<pad>'" in out
    # not a terminal: trained tokens between markers, the answer and its end of turn
    assert "[[is   hi <|im_end|>]]" in out and "\x1b[" not in out
    assert out.rstrip().endswith("problems: none; ready to train")
    code, out, _ = _check(capsys, recipe.source, "--color", "always")
    assert "\x1b[1;32m" in out and "[[" not in out


def test_truncation_is_counted_and_rows_without_target_are_dropped(capsys, tiny_recipe, tmp_path):
    rows = [{"messages": [{"role": "user", "content": " ".join(["one"] * n)},
                          {"role": "assistant", "content": "two"}]} for n in (2, 2, 40, 40, 40)]
    path = tmp_path / "long.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = tiny_recipe("lora", f"data.train={path}", "data.eval=null", "data.max_length=60")
    code, out, _ = _check(capsys, recipe.source, f"data.train={path}", "data.eval=null", "data.max_length=60")
    assert code == 0
    assert "data.max_length=60 truncates 3 row(s); 3 lose their whole target and are dropped" in out
    assert "long.jsonl:3, " in out
    trainer, _, _ = build_trainer(recipe, tmp_path / "w")
    assert len(trainer.train_dataset) == 2  # what check said: TRL drops the three


def test_template_that_leaves_eos_untrained_is_fatal_and_train_refuses_before_loading(
        capsys, tiny_recipe, tiny_model_dir, tmp_path, monkeypatch):
    model = _model_with_template(tiny_model_dir, tmp_path, EOS_OUTSIDE)
    code, out, err = _check(capsys, tiny_recipe("lora").source, f"model={model}")
    assert code == 2 and "do not end with the EOS '<|im_end|>'" in out and "training would be refused" in out
    assert err.count("\n") == 1 and "data.template" in err

    def no_load(*a, **k):
        raise AssertionError("model weights loaded despite a fatal data problem")

    monkeypatch.setattr("adapters_sft.models.load_model", no_load)
    with pytest.raises(UserError, match="do not end with the EOS"):
        train(tiny_recipe("lora", f"model={model}"), echo=lambda *_: None)


def test_model_without_template_needs_one_by_name_which_is_saved_in_the_run(tiny_recipe, tiny_model_dir, tmp_path, capsys):
    model = _model_with_template(tiny_model_dir, tmp_path, None)
    code, _, err = _check(capsys, tiny_recipe("lora").source, f"model={model}")
    assert code == 2 and "data.template: the model has no chat template" in err
    result = train(tiny_recipe("lora", f"model={model}", "data.template=chatml"), echo=lambda *_: None)
    from adapters_sft.data.templates import NAMED

    assert (result.run_dir / "tokenizer" / "chat_template.jinja").read_text() == NAMED["chatml"][0]


def test_a_named_template_on_foreign_tokens_is_refused(capsys, tiny_recipe):
    code, _, err = _check(capsys, tiny_recipe("lora").source, "data.template=llama3")
    assert code == 2 and "'llama3' ends turns with '<|eot_id|>', which is not one token" in err


def test_unknown_template_name_suggests_the_closest(capsys, tiny_recipe):
    code, _, err = _check(capsys, tiny_recipe("lora").source, "data.template=chatlm")
    assert code == 2 and "command line: data.template: must be auto, none or one of" in err and "'chatml'" in err


def test_duplicates_are_a_warning(capsys, tiny_recipe, tiny_data, tmp_path):
    path = tmp_path / "dup.jsonl"
    path.write_text(tiny_data["train"].read_text() + tiny_data["train"].read_text().splitlines()[0] + "\n")
    code, out, _ = _check(capsys, tiny_recipe("lora").source, f"data.train={path}")
    assert code == 0 and "warning: data.train: 1 duplicate row(s) (" in out and "dup.jsonl:33 repeats" in out


def test_classification_data_with_an_sft_recipe_is_refused_as_train_refuses_it(capsys, tiny_recipe, tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("text,label\nred,colour\ncat,animal\nblue,colour\n")
    code, out, err = _check(capsys, tiny_recipe("lora").source, f"data.train={path}", "data.eval=null")
    assert code == 2 and "holds classification rows" in err and "ready to train" not in out
    with pytest.raises(UserError, match="holds classification rows") as refused:
        train(tiny_recipe("lora", f"data.train={path}", "data.eval=null"), echo=lambda *_: None)
    assert str(refused.value) in err
    code, out, _ = _check(capsys, tiny_recipe("lora").source, f"data.train={path}", "data.eval=null",
                          "task=classification")
    assert code == 0 and "format: classification" in out and "labels {'animal': 1, 'colour': 2}" in out
    path.write_text("text,label\nred,colour\nblue,colour\n")
    code, out, err = _check(capsys, tiny_recipe("lora").source, f"data.train={path}", "data.eval=null",
                            "task=classification")
    assert code == 2 and "only one label" in err


def test_text_cut_to_one_token_has_nothing_to_learn_and_is_refused(capsys, tiny_recipe, tmp_path, monkeypatch):
    path = tmp_path / "text.jsonl"
    path.write_text("".join(json.dumps({"text": f"red blue green cat dog {i}"}) + "\n" for i in range(8)))
    code, out, _ = _check(capsys, tiny_recipe("lora").source, f"data.train={path}", "data.eval=null",
                          "data.max_length=1")
    assert code == 2 and "no row keeps a token to learn within data.max_length=1" in out

    def no_load(*a, **k):
        raise AssertionError("model weights loaded for a run with nothing to learn")

    monkeypatch.setattr("adapters_sft.models.load_model", no_load)
    with pytest.raises(UserError, match="so every step would have zero loss"):
        train(tiny_recipe("lora", f"data.train={path}", "data.eval=null", "data.max_length=1"),
              echo=lambda *_: None)
    code, out, _ = _check(capsys, tiny_recipe("lora").source, f"data.train={path}", "data.eval=null",
                          "data.max_length=2")
    assert code == 0, out  # one token after the first: something to learn

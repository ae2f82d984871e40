"""Our pre-model tokenization is TRL's own: SFTTrainer given the raw rows builds the very same
input_ids and labels (guards the one private TRL call in data/tokenize.py), and the pad token
is made distinct from EOS without ever masking EOS."""
from __future__ import annotations

import json

import pytest

from adapters_sft.data import load_splits
from adapters_sft.data.tokenize import distinct_pad, prepare
from adapters_sft.training.args import training_args


def _trl_built(tiny_model_dir, tmp_path, rows, **flags):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from adapters_sft.data.templates import training_template

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.chat_template = training_template(tok)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    args = SFTConfig(output_dir=str(tmp_path / "trl"), max_length=None, bf16=False, report_to=[], **flags)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok)
    return [(r["input_ids"], r["labels"]) for r in trainer.train_dataset]


@pytest.mark.parametrize("rows,flags,extra", [
    ([{"messages": [{"role": "user", "content": "what is one"}, {"role": "assistant", "content": "one"},
                    {"role": "user", "content": "what is two"}, {"role": "assistant", "content": "two"}]}],
     {"assistant_only_loss": True}, []),
    ([{"prompt": "what is one", "completion": " one"}], {"completion_only_loss": True}, ["data.template=none"]),
    ([{"text": "one two three"}], {}, []),
])
def test_same_ids_and_labels_as_sfttrainer_builds(rows, flags, extra, tiny_recipe, tiny_model_dir, tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = tiny_recipe("lora", f"data.train={path}", "data.eval=null", "data.max_length=null", *extra)
    ours = prepare(recipe, load_splits(recipe), training_args(recipe, tmp_path / "c")).train
    assert [(r["input_ids"], r["labels"]) for r in ours] == _trl_built(tiny_model_dir, tmp_path, rows, **flags)


def test_multi_turn_trains_every_assistant_turn(tiny_recipe, tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"messages": [
        {"role": "user", "content": "what is one"}, {"role": "assistant", "content": "one"},
        {"role": "user", "content": "what is two"}, {"role": "assistant", "content": "two"}]}) + "\n")
    recipe = tiny_recipe("lora", f"data.train={path}", "data.eval=null")
    ready = prepare(recipe, load_splits(recipe), training_args(recipe, tmp_path / "c"))
    tok, row = ready.tokenizer, ready.train[0]
    trained = [t for t, lab in zip(row["input_ids"], row["labels"]) if lab != -100]
    assert tok.convert_ids_to_tokens(trained) == ["one", "<|im_end|>", "two", "<|im_end|>"]


def test_pad_equal_to_eos_is_replaced_by_a_distinct_token():
    from tests.conftest import make_tokenizer  # the tiny tokenizer, built fresh

    tok = make_tokenizer()
    tok.pad_token = tok.eos_token
    note = distinct_pad(tok)
    assert tok.pad_token == "<pad>" and tok.pad_token_id != tok.eos_token_id, note
    tok2 = make_tokenizer()
    assert distinct_pad(tok2) == "'<pad>'" and tok2.pad_token == "<pad>"  # a distinct pad is kept


def test_collated_batch_keeps_eos_in_the_loss_when_pad_is_eos(tiny_recipe, tmp_path):
    """Even with pad == EOS (no other candidate), TRL's collator masks padding by length: the
    EOS that ends each target keeps its label in a padded batch."""
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    recipe = tiny_recipe("lora")
    ready = prepare(recipe, load_splits(recipe), training_args(recipe, tmp_path / "c"))
    eos = ready.tokenizer.eos_token_id
    rows = [ready.train[i] for i in range(4)]
    batch = DataCollatorForLanguageModeling(pad_token_id=eos)(rows)
    for i, row in enumerate(rows):
        n = len(row["input_ids"])
        assert batch["labels"][i, :n].tolist() == row["labels"]
        assert batch["labels"][i, n:].eq(-100).all()
        last = max(j for j, lab in enumerate(row["labels"]) if lab != -100)
        assert batch["labels"][i, last].item() == eos

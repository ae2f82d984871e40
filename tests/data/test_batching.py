"""data.packing: packed, padding-free batches keep their sequences apart (each example's loss
is the same packed and unpacked, for each attention implementation selected on CPU, and on a
GPU where one is lent), the
trainer gets the batches the choice names, and `auto` groups rows by length only where random
order would waste the batch on padding."""
from __future__ import annotations

import json

import pytest

from adapters_sft.data.batching import padding
from adapters_sft.preflight import preflight
from adapters_sft.trainer import build_trainer
from tests.conftest import WORDS

LENGTHS = (5, 11, 3, 17, 8)


def per_token_loss(model, batch):
    """As SFTTrainer.compute_loss runs the model: without a KV cache, which transformers takes
    as a sign of generation and then leaves packed sequences unmasked."""
    import torch

    logits = model(**batch, use_cache=False).logits[0, :-1].float()
    return torch.nn.functional.cross_entropy(logits, batch["labels"][0, 1:], reduction="none",
                                             ignore_index=-100)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_each_example_loses_the_same_packed_and_unpacked(attention, tiny_model_dir):
    import torch

    same_loss_packed_and_alone(tiny_model_dir, attention, "cpu", torch.float32, 1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("attention", ["sdpa", "flash_attention_2"])
def test_each_example_loses_the_same_packed_on_cuda(attention, tiny_model_dir):
    """What the tool selects on a GPU: SDPA, or FlashAttention 2 where flash_attn is installed
    (which computes in bf16 only, hence the looser tolerance)."""
    import importlib.util

    import torch

    if attention == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
        pytest.skip("flash_attn is not installed")
    dtype = torch.bfloat16 if attention == "flash_attention_2" else torch.float32
    same_loss_packed_and_alone(tiny_model_dir, attention, "cuda", dtype,
                               2e-2 if dtype == torch.bfloat16 else 1e-5)


def same_loss_packed_and_alone(model_dir, attention, device, dtype, atol):
    import torch
    from transformers import AutoModelForCausalLM
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, device_map=device,
                                                 attn_implementation=attention).eval()
    assert model.config._attn_implementation == attention
    rows = [{"input_ids": torch.randint(4, 64, (n,)).tolist()} for n in LENGTHS]
    for row in rows:
        row["labels"] = list(row["input_ids"])
    packed = DataCollatorForLanguageModeling(pad_token_id=3, padding_free=True)(rows)  # TRL's, as trained
    assert packed["input_ids"].shape == (1, sum(LENGTHS)) and "attention_mask" not in packed
    packed = {k: v.to(device) if torch.is_tensor(v) else v for k, v in packed.items()}
    with torch.no_grad():
        together = per_token_loss(model, packed)
        starts = [0]
        for n in LENGTHS:
            starts.append(starts[-1] + n)
        for row, start, end in zip(rows, starts, starts[1:]):
            alone = {k: v.to(device) if torch.is_tensor(v) else v
                     for k, v in DataCollatorForLanguageModeling(pad_token_id=3)([row]).items()}
            expected = per_token_loss(model, alone)
            # the packed row's targets for this example: its own tokens after the first
            assert torch.allclose(together[start:end - 1], expected, atol=atol), (attention, start)
        # the check can fail: the same tokens as one sequence (no position_ids) attend across examples
        plain = {"input_ids": packed["input_ids"], "labels": packed["labels"]}
        assert not torch.allclose(per_token_loss(model, plain), together, atol=1e-3)


def test_padding_is_the_share_of_padded_tokens():
    assert padding([2, 4], [0, 1], 2) == pytest.approx(0.25)  # 6 real tokens in 2 x 4
    assert padding([2, 4, 4], [1, 2, 0], 2) == 0.0


def uneven(tmp_path):
    """Prompt-completion rows from 2 to 40 words: random batches are mostly padding."""
    path = tmp_path / "uneven.jsonl"
    path.write_text("".join(json.dumps({"prompt": "what is " + WORDS[i % 12],
                                        "completion": " ".join(WORDS[:2 + (i * 7) % 39])}) + "\n"
                            for i in range(40)))
    return path


def test_auto_groups_uneven_rows_by_length_and_says_why(tiny_recipe, tmp_path):
    recipe = tiny_recipe("lora", f"data.train={uneven(tmp_path)}", "data.eval=null", "data.max_length=128")
    prepared = preflight(recipe, echo=lambda line: None).prepared
    line = next(n for n in prepared.report.notes if n.startswith("batching:"))
    assert line.startswith("batching: length-grouped (data.packing=auto; padding: random order ")
    trainer, _, _ = build_trainer(recipe, tmp_path / "w")
    assert trainer.args.train_sampling_strategy == "group_by_length" and not trainer.args.packing


def test_uniform_rows_stay_in_random_order(tiny_recipe, tmp_path):
    prepared = preflight(tiny_recipe("lora"), echo=lambda line: None).prepared
    assert prepared.batching == {}
    assert any(n.startswith("batching: random order (data.packing=auto;") for n in prepared.report.notes)


def test_packing_true_trains_on_padding_free_batches(tiny_recipe, tmp_path):
    import math

    recipe = tiny_recipe("lora", f"data.train={uneven(tmp_path)}", "data.eval=null", "data.packing=true",
                         "data.max_length=128", "training.max_steps=2")
    trainer, _, _ = build_trainer(recipe, tmp_path / "w")
    batch = next(iter(trainer.get_train_dataloader()))
    assert trainer.args.packing and batch["input_ids"].shape[0] == 1 and "attention_mask" not in batch
    assert len(trainer.train_dataset) < 40  # 40 examples of 46 to 110 tokens in fewer rows of 128
    assert int((batch["position_ids"][0] == 0).sum()) >= 4  # each a sequence of its own
    assert math.isfinite(trainer.train().training_loss)


def test_the_recipes_own_training_keys_win(tiny_recipe, tmp_path):
    recipe = tiny_recipe("lora", f"data.train={uneven(tmp_path)}", "data.eval=null",
                         "training.train_sampling_strategy=sequential")
    prepared = preflight(recipe, echo=lambda line: None).prepared
    assert prepared.batching == {}
    assert any(n.startswith("batching: as training.train_sampling_strategy sets it") for n in prepared.report.notes)

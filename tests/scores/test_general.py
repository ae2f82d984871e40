"""The general probe (scores/general.py): its KL is the exact KL where the top-K tokens cover
the vocabulary and a lower bound where they do not, an unchanged model changes nothing, the
prompts file is checked line by line, and a scored run carries the figures into eval.json,
its reference into the run, and the line into `train` and `eval`."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from adapters_sft.cli.main import main
from adapters_sft.scores import general
from tests.conftest import make_tokenizer

PROMPTS = ["hi what is the date", "convert one two", "red blue green cat", "a b c", "yes or no",
           "the sun and the moon"]


@pytest.fixture
def pair(tiny_model_dir: Path):
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tuned = copy.deepcopy(base)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return base, tuned, make_tokenizer()


def exact_kl(base, tuned, tok, ref) -> float:
    """KL(base || tuned) over the whole vocabulary at each reference answer token."""
    chats = general.as_prompts(tok, ref.prompts)
    total = 0.0
    pairs = zip(general.teacher_forced(base, tok, chats, ref.answers, 4),
                general.teacher_forced(tuned, tok, chats, ref.answers, 4))
    for (_, lb), (_, lt) in pairs:
        total += float((lb.exp() * (lb - lt)).sum())
    return total / sum(len(a) for a in ref.answers)


def test_kl_is_exact_over_a_covered_vocabulary_and_a_lower_bound_otherwise(pair, monkeypatch):
    base, tuned, tok = pair
    ref = general.take_reference(base, tok, PROMPTS, 4)
    assert ref.top_ids.shape == (sum(len(a) for a in ref.answers), general.TOP_K)
    report = general.compare(tuned, tok, ref, 3)
    full = exact_kl(base, tuned, tok, ref)
    assert full > 1e-3
    assert report["kl"] == pytest.approx(full, rel=1e-4)  # the tiny vocabulary is 64 = TOP_K
    assert report["reference_mass"] == pytest.approx(1.0, abs=1e-5)
    assert report["nll_tuned"] > report["nll_reference"]  # the base's own answers got less likely
    monkeypatch.setattr(general, "TOP_K", 4)
    coarse = general.compare(tuned, tok, general.take_reference(base, tok, PROMPTS, 4), 3)
    assert 0 < coarse["kl"] <= full + 1e-6 and coarse["reference_mass"] < 1


def test_an_unchanged_model_keeps_every_answer(pair):
    base, _, tok = pair
    ref = general.take_reference(base, tok, PROMPTS, 4)
    report = general.compare(base, tok, ref, 5)  # another batch size, the same answers
    assert report["unchanged"] == report["prefix_agree"] == 1.0
    assert report["kl"] == pytest.approx(0.0, abs=1e-5)
    assert report["nll_tuned"] == pytest.approx(report["nll_reference"], abs=1e-4)
    assert len(report["examples"]) == general.EXAMPLES
    assert all(e["before"] == e["after"] for e in report["examples"])


def test_a_changed_model_shows_its_changed_answers_first(pair):
    base, tuned, tok = pair
    ref = general.take_reference(base, tok, PROMPTS, 4)
    report = general.compare(tuned, tok, ref, 4)
    assert report["unchanged"] < 1
    first = report["examples"][0]
    assert first["before"] != first["after"] and first["prompt"] in PROMPTS
    assert report["examples"][0]["kl"] >= report["examples"][1]["kl"] or report["examples"][1]["before"] == \
        report["examples"][1]["after"]


def test_the_reference_reads_back_from_its_file(pair, tmp_path):
    base, _, tok = pair
    ref = general.take_reference(base, tok, PROMPTS, 4, key="k")
    general.save(ref, tmp_path / "ref.safetensors")
    back = general.load(tmp_path / "ref.safetensors")
    assert back.answers == ref.answers and back.texts == ref.texts and back.prompts == PROMPTS
    assert torch.equal(back.top_ids, ref.top_ids) and torch.equal(back.top_logprobs, ref.top_logprobs)
    assert back.key == "k" and back.nll() == pytest.approx(ref.nll())
    (tmp_path / "bad.safetensors").write_bytes(b"not a file")
    assert general.load(tmp_path / "bad.safetensors") is None


def test_the_bundled_prompts_are_many_and_distinct():
    prompts = general.load_prompts(True)
    assert 100 <= len(prompts) <= 200 and len(set(prompts)) == len(prompts)


@pytest.mark.parametrize("text, said", [
    ('{"prompt": "a"}\n{"prompt": \n', "p.jsonl:2: not JSON"),
    ('{"prompt": "a"}\n\n{"question": "b"}\n', "p.jsonl:3: needs a 'prompt' string"),
    ("\n\n", "holds no prompts"),
])
def test_a_bad_prompts_file_is_one_line_naming_its_line(tmp_path, text, said):
    (tmp_path / "p.jsonl").write_text(text)
    with pytest.raises(Exception, match=said):
        general.load_prompts(str(tmp_path / "p.jsonl"))


def test_a_text_file_holds_one_prompt_per_line(tmp_path):
    (tmp_path / "p.txt").write_text("first one\n\n second \n")
    assert general.load_prompts(str(tmp_path / "p.txt")) == ["first one", "second"]


def test_a_missing_prompts_file_stops_train_before_anything_is_written(tiny_recipe, tmp_path, capsys):
    recipe = tiny_recipe("lora", "eval.metric=exact_match", f"eval.general={tmp_path / 'none.jsonl'}")
    path = tmp_path / "lora.yaml"
    argv = ["train", str(path), "eval.metric=exact_match", f"eval.general={tmp_path / 'none.jsonl'}"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "eval.general: file" in err and "none.jsonl' not found" in err
    assert not Path(recipe.output_dir).exists()


def test_a_scored_run_reports_what_it_kept_and_eval_says_it_again(tiny_recipe, tmp_path, capsys):
    prompts = tmp_path / "mine.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    tiny_recipe("lora", "eval.metric=exact_match")  # writes lora.yaml
    argv = ["train", str(tmp_path / "lora.yaml"), "eval.metric=exact_match", f"eval.general={prompts}",
            "training.max_steps=4"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    run = tmp_path / "run"
    saved = json.loads((run / "eval.json").read_text())["general"]
    assert saved["prompts"] == len(PROMPTS) and 0 <= saved["unchanged"] <= 1 and saved["kl"] >= 0
    line = next(x for x in out.splitlines() if "general ability:" in x)
    assert f"{saved['unchanged']:.0%} of {len(PROMPTS)} answers unchanged" in line and "nats/token" in line
    assert general.load(run / "general.safetensors").prompts == PROMPTS  # the reference, kept in the run
    assert main(["eval", str(run)]) == 0
    again = json.loads((run / "evals" / "heldout" / "eval.json").read_text())["general"]
    assert again["kl"] == pytest.approx(saved["kl"], abs=1e-5) and again["unchanged"] == saved["unchanged"]
    assert "general ability:" in capsys.readouterr().out
    assert main(["eval", str(run), "--general", "false"]) == 0
    assert "general" not in json.loads((run / "evals" / "heldout" / "eval.json").read_text())
    other = tmp_path / "other.txt"
    other.write_text("a b c\nred cat\n")
    assert main(["eval", str(run), "--general", str(other)]) == 0  # a new reference, from the base
    assert json.loads((run / "evals" / "heldout" / "eval.json").read_text())["general"]["prompts"] == 2

"""`generate` answers from a run directory exactly as the trained model does."""
from __future__ import annotations

import json

from adapters_sft.cli.main import main
from adapters_sft.scores.generative import generate
from adapters_sft.trainer import train


def test_generate_from_a_run_matches_the_trained_model(tiny_recipe, tmp_path, capsys):
    result = train(tiny_recipe("lora"), echo=lambda *_: None)
    model, tok = result.trainer.model, result.trainer.processing_class
    prompts = [[{"role": "user", "content": "what is one"}], [{"role": "user", "content": "what is red"}]]
    want = generate(model, tok, prompts, 4, 2)

    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text(json.dumps({"prompt": "what is one"}) + "\n" + json.dumps({"messages": prompts[1]}) + "\n")
    assert main(["generate", str(result.run_dir), "--input", str(inp), "--output", str(out),
                 "--max-new-tokens", "4"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["answer"] for r in rows] == want and rows[0]["prompt"] == "what is one"

    assert main(["generate", str(result.run_dir), "--prompt", "what is one", "--max-new-tokens", "4"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == want[0]
    # an existing --output is never replaced silently
    assert main(["generate", str(result.run_dir), "--input", str(inp), "--output", str(out)]) == 2


def test_generate_reports_a_bad_prompt_line(tmp_path, capsys):
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"prompt": "ok"}\n{"text": 3}\n')
    assert main(["generate", "unused", "--input", str(inp), "--output", str(tmp_path / "o.jsonl")]) == 2
    assert f"{inp}:2: expected a 'prompt' string or a 'messages' list" in capsys.readouterr().err

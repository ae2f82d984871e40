"""Generate the bundled replay prompts (general/replay.jsonl): general requests whose answers,
written by the base model itself, `data.replay` mixes into training (data/replay.py).

    python -m adapters_sft.datasets.make_replay_prompts   # rewrites general/replay.jsonl

They are apart from the probe's prompts (general/prompts.jsonl, which eval.general scores):
a prompt that replay trains on is never one the probe reports, so what the probe says
unchanged was not taught back. Built from templates and fillers, in the probe's kinds
(facts, arithmetic, instructions, rewriting, code, languages); seeded, so the file is stable.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

COUNTRIES = ["Spain", "Germany", "Egypt", "Kenya", "Peru", "Norway", "India", "Mexico", "Greece",
             "Australia", "Argentina", "Portugal", "Sweden", "Thailand", "Vietnam", "Poland", "Chile",
             "Ireland", "Turkey", "Morocco"]
THINGS = ["a volcano", "a library", "a rainbow", "an orchestra", "a glacier", "a bicycle", "a vaccine",
          "a telescope", "a bridge", "a desert", "a battery", "a satellite", "a museum", "a compass",
          "an island", "a thermometer", "a microscope", "a harbour", "a forest", "an engine"]
WORDS = ["quick", "bright", "ancient", "gentle", "loud", "narrow", "brave", "calm", "empty", "rich",
         "early", "heavy", "simple", "tiny", "honest", "strange", "warm", "polite", "rare", "smooth"]
SENTENCES = ["The dog runs in the park.", "We eat dinner at seven.", "She writes a letter to her aunt.",
             "They build a small house.", "I read the newspaper every morning.", "He drives to work.",
             "The children play football after school.", "My brother cooks pasta on Sundays.",
             "The train leaves at noon.", "Our neighbours grow tomatoes."]
PHRASES = ["Where is the nearest bakery?", "I would like a cup of coffee.", "The museum opens at ten.",
           "My sister lives in the city.", "It is raining today.", "How much does this cost?",
           "We are going to the beach.", "The soup is very hot.", "I lost my keys.", "See you tomorrow."]
LANGUAGES = ["French", "Spanish", "German", "Italian", "Portuguese"]
TASKS = ["returns the product of two numbers", "counts the vowels in a string",
         "returns the smallest item of a list", "reverses a string", "squares every number in a list",
         "checks whether a word is a palindrome", "returns the average of a list of numbers",
         "removes duplicates from a list", "joins a list of words with spaces",
         "returns the last element of a list"]
LISTS = ["vegetables", "musical instruments", "sea animals", "kinds of weather", "board games",
         "European rivers", "programming languages", "household tools", "flowers", "sports played with a ball"]


def prompts(rng: random.Random) -> list[str]:
    out = [f"What is the capital of {c}?" for c in COUNTRIES]
    out += [f"Explain in one sentence what {t} is." for t in THINGS]
    out += [f"Give me a synonym for '{w}'." for w in WORDS[:10]]
    out += [f"What is the opposite of '{w}'?" for w in WORDS[10:]]
    out += [f"Rewrite in the past tense: {s}" for s in SENTENCES]
    out += [f"Turn this into a question: {s}" for s in SENTENCES[:5]]
    out += [f"Rewrite this more formally: {s}" for s in SENTENCES[5:]]
    out += [f"Translate to {rng.choice(LANGUAGES)}: {p}" for p in PHRASES]
    out += [f"Write a Python function that {t}." for t in TASKS]
    out += [f"List three {x}." for x in LISTS]
    for _ in range(30):
        a, b = rng.randint(11, 99), rng.randint(2, 30)
        op, word = rng.choice([("+", "plus"), ("-", "minus"), ("*", "times")])
        out.append(rng.choice([f"What is {a} {word} {b}?", f"Compute {a} {op} {b}."]))
    return out


def main() -> None:
    rows = prompts(random.Random(29))
    assert len(set(rows)) == len(rows)
    probe = Path(__file__).parent / "general" / "prompts.jsonl"
    held = {json.loads(line)["prompt"] for line in probe.read_text().splitlines()}
    assert not held & set(rows), sorted(held & set(rows))
    out = Path(__file__).parent / "general" / "replay.jsonl"
    out.write_text("".join(json.dumps({"prompt": p}, ensure_ascii=False) + "\n" for p in rows))
    print(f"{len(rows)} prompts -> {out}")


if __name__ == "__main__":
    main()

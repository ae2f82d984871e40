"""Generate the bundled `topics` dataset: short news-style texts in 4 topics.

    python -m adapters_sft.datasets.make_topics   # rewrites topics/train.jsonl, topics/eval.jsonl

Each text joins a who, a what and a where/when written for its topic (sports, science,
business, food), in one of several sentence shapes. Held-out texts are built from fragments
that never appear in training (every fragment list is split 3:1), so the eval split scores
whether a classifier learned the topic, not the training sentences. Some sentences also
carry a neutral clause shared by all topics, and in a third of them the who or the
where/when comes from another topic ("The bank grilled fresh fish over charcoal at the
Olympic trials" is food): the event decides the topic, so a classifier cannot get by on one
giveaway word. Seeded, so the files are stable.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

FRAGMENTS: dict[str, dict[str, list[str]]] = {
    "sports": {
        "who": ["the home team", "the veteran striker", "the young goalkeeper", "the national squad",
                "the tennis champion", "the marathon runner", "the visiting side", "the head coach",
                "the rookie quarterback", "the cycling team", "the captain", "the league leaders",
                "the reigning world champion", "the sprinter", "the basketball club", "the swimmer"],
        "what": ["scored twice in the second half", "won the final on penalties",
                 "broke the course record", "was sent off after a rough tackle",
                 "signed a three-year contract with the club", "lost the match in extra time",
                 "qualified for the semi-finals", "retired after fifteen seasons",
                 "defended the title in straight sets", "climbed to the top of the table",
                 "missed a late free kick", "came back from two goals down",
                 "set a personal best in the relay", "was injured during the warm-up",
                 "clinched the championship", "drew level in the final minute"],
        "where": ["in front of a sold-out stadium", "at the Olympic trials",
                  "during the derby on Saturday", "in the opening round of the tournament",
                  "at the away ground", "before the transfer window closed",
                  "on the last day of the season", "in the cup quarter-final",
                  "under heavy rain at the track", "in a tense playoff game",
                  "at the world championships", "after the half-time whistle"],
    },
    "science": {
        "who": ["researchers at the university", "a team of astronomers", "the biologists",
                "physicists at the national laboratory", "a group of chemists", "the space agency",
                "climate scientists", "the geologists", "neuroscientists", "an international team of "
                "researchers", "the lab's engineers", "marine biologists", "the mission scientists",
                "a doctoral student", "the research institute", "geneticists"],
        "what": ["discovered a new species of frog", "measured the mass of a distant exoplanet",
                 "published a study on gene editing", "observed a rare solar flare",
                 "sequenced the genome of an ancient plant", "built a more efficient solar cell",
                 "detected gravitational waves from two merging stars", "launched a probe toward Jupiter",
                 "found evidence of water ice beneath the surface", "mapped neurons in the fruit fly brain",
                 "developed a vaccine candidate in mice", "recorded the coldest temperature in the lab",
                 "identified a new mineral in meteorite samples", "tested a quantum computing chip",
                 "traced the origin of the fossil", "simulated the early universe"],
        "where": ["in a paper published in Nature", "using the new space telescope",
                  "after years of field experiments", "at the particle accelerator",
                  "in a peer-reviewed journal", "with data from the orbiting satellite",
                  "in samples taken from the deep ocean", "during the lunar mission",
                  "at a research station in Antarctica", "using electron microscopes",
                  "in a controlled clinical trial", "with a new imaging technique"],
    },
    "business": {
        "who": ["the technology company", "shareholders", "the central bank", "the retail chain",
                "the airline", "investors", "the car maker", "the chief executive",
                "the start-up", "the oil producer", "the board of directors", "the bank",
                "the telecom operator", "small businesses", "the pharmaceutical group", "analysts"],
        "what": ["reported record quarterly profits", "cut interest rates by a quarter point",
                 "announced a merger worth two billion dollars", "laid off five hundred workers",
                 "raised its revenue forecast for the year", "saw its shares fall sharply",
                 "filed for bankruptcy protection", "opened two hundred new stores",
                 "agreed to buy a rival firm", "paid a higher dividend to shareholders",
                 "missed earnings expectations", "secured fifty million in venture funding",
                 "raised prices to cover rising costs", "listed its shares on the stock exchange",
                 "reduced its debt", "posted a loss for the third quarter"],
        "where": ["on Wall Street", "after the markets closed", "in its annual report",
                  "amid weak consumer demand", "as inflation eased", "at the shareholder meeting",
                  "despite supply chain problems", "in the fiscal year", "as the dollar weakened",
                  "according to the earnings call", "in a filing with regulators",
                  "as sales slowed in Europe"],
    },
    "food": {
        "who": ["the chef", "the bakery", "home cooks", "the new restaurant", "the food critic",
                "the pastry chef", "the farmers' market", "the cookbook author", "the family café",
                "the street food vendor", "the sommelier", "the cooking school", "the pizzeria",
                "the vegan kitchen", "the grandmother's recipe", "the barbecue pitmaster"],
        "what": ["roasted the vegetables with garlic and thyme", "baked sourdough bread overnight",
                 "served a spicy noodle soup", "simmered the tomato sauce for hours",
                 "whisked eggs and sugar into a light sponge", "grilled fresh fish over charcoal",
                 "paired the cheese with a sweet wine", "fermented cabbage into kimchi",
                 "added fresh basil to the pasta", "made dumplings filled with pork and ginger",
                 "caramelised onions for the tart", "seasoned the stew with cumin and paprika",
                 "folded chocolate into the cookie dough", "marinated the chicken in yoghurt",
                 "braised the short ribs in red wine", "topped the salad with toasted seeds"],
        "where": ["for the Sunday lunch menu", "in a cast-iron pan", "at the harvest festival",
                  "using seasonal ingredients", "in a wood-fired oven", "for the holiday dinner",
                  "with herbs from the garden", "in the restaurant's open kitchen",
                  "for a cooking class", "at the night market", "before the dinner service",
                  "with a pinch of sea salt"],
    },
}
NEUTRAL = ["Officials said on Tuesday that", "According to a statement,", "Early this morning,",
           "Local media reported that", "In a surprise move,", "As expected,",
           "Late on Friday,", "Sources confirmed that"]
SHAPES = ["{who} {what} {where}.", "{lead} {who} {what} {where}.", "{where}, {who} {what}.",
          "{lead} {who} {what}."]
PER_TOPIC = {"train": 80, "eval": 25}


def split_list(items: list[str], part: str) -> list[str]:
    """Fragments for `part`: every fourth one is held out for eval."""
    return [x for i, x in enumerate(items) if (i % 4 == 3) == (part == "eval")]


MIXED = 0.33  # chance that the who, and separately the where, comes from another topic


def sentence(topic: str, part: str, rng: random.Random) -> str:
    pick = {}
    for slot, own in FRAGMENTS[topic].items():
        source = own
        if slot != "what" and rng.random() < MIXED:
            source = FRAGMENTS[rng.choice([t for t in FRAGMENTS if t != topic])][slot]
        pick[slot] = rng.choice(split_list(source, part))
    pick["lead"] = rng.choice(split_list(NEUTRAL, part))
    text = rng.choice(SHAPES).format(**pick)
    return text[0].upper() + text[1:]


def rows(part: str, rng: random.Random) -> list[dict[str, str]]:
    out = []
    for topic in FRAGMENTS:
        seen: set[str] = set()
        while len(seen) < PER_TOPIC[part]:
            text = sentence(topic, part, rng)
            if text not in seen:
                seen.add(text)
                out.append({"text": text, "label": topic})
    rng.shuffle(out)
    return out


def main() -> None:
    here = Path(__file__).parent / "topics"
    here.mkdir(exist_ok=True)
    rng = random.Random(20261122)
    for part in ("train", "eval"):
        with open(here / f"{part}.jsonl", "w", encoding="utf-8") as f:
            for row in rows(part, rng):
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

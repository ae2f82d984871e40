"""The built-in rewards score what their names say, and the call TRL makes refuses anything
but one number per answer, naming the reward and the prompt."""
from __future__ import annotations

import pytest

from adapters_sft.registry import get_reward
from adapters_sft.rewards.base import RewardFailed, Scorer, plugin_fn
from adapters_sft.rewards.spec import build_reward

PROMPTS = [[{"role": "user", "content": "Convert 10-Feb-2001"}], [{"role": "user", "content": "Convert May 8, 1971"}]]


def reward(name: str, **opts):
    return build_reward(name, opts, "rewards[0]", lambda key: "r.yaml:3: ")


def call(r, answers, **columns):
    fn = plugin_fn(r)
    completions = [[{"role": "assistant", "content": a}] for a in answers]
    return Scorer("x", fn, 1.0)(prompts=PROMPTS[: len(answers)], completions=completions,
                                completion_ids=[list(range(len(a))) for a in answers], **columns)


def test_exact_match_strips_and_compares_with_the_column():
    r = reward("exact_match", column="answer")
    assert call(r, [" 2001-02-10\n", "1971-5-8"], answer=["2001-02-10", "1971-05-08"]) == [1.0, 0.0]
    folded = reward("exact_match", column="answer", ignore_case=True)
    assert call(folded, ["YES", "no"], answer=["yes", "yes"]) == [1.0, 0.0]


def test_contains_regex_length_and_json():
    assert call(reward("contains", column="answer"), ["it is 2001-02-10.", "no"],
                answer=["2001-02-10", "1971"]) == [1.0, 0.0]
    fmt = reward("regex", pattern=r"\d{4}-\d{2}-\d{2}")
    assert call(fmt, ["2001-02-10", "on 2001-02-10"]) == [1.0, 0.0]
    anywhere = reward("regex", pattern=r"\d{4}-\d{2}-\d{2}", full=False)
    assert call(anywhere, ["2001-02-10", "on 2001-02-10"]) == [1.0, 1.0]
    # completion_ids here are as long as the text: 4 tokens within 8, 12 tokens 4 over, 40 capped at -1
    length = reward("length", max_tokens=8)
    assert call(length, ["abcd", "abcdefghijkl"]) == [0.0, -0.5]
    assert call(length, ["x" * 40]) == [-1.0]
    assert call(reward("json"), ['{"a": 1}', "{a: 1}"]) == [1.0, 0.0]


def test_builtins_are_registered_through_the_entry_point_group():
    from importlib.metadata import entry_points

    declared = {ep.name for ep in entry_points(group="adapters_sft.rewards")}
    assert {"exact_match", "contains", "regex", "length", "json"} <= declared
    assert get_reward("regex").name == "regex"


@pytest.mark.parametrize("returned, words", [
    ([1.0], r"returned 1 values for 2 answers"),
    ("1.0", r"returned str for 2 answers"),
    ([1.0, "high"], r"returned 'high' for answer 1, not a number \(prompt 'Convert May 8, 1971'\)"),
])
def test_a_reward_returning_other_than_numbers_names_itself_and_the_prompt(returned, words):
    scorer = Scorer("mine", lambda **kw: returned, 1.0)
    with pytest.raises(RewardFailed, match=r"reward 'mine' " + words):
        scorer(prompts=PROMPTS, completions=["a", "b"], completion_ids=[[1], [2]])


def test_a_reward_that_raises_names_the_prompt_it_fails_on():
    def picky(prompts, completions, **kw):
        return [1.0 / (len(c) - 1) for c in completions]  # "b" alone divides by zero

    scorer = Scorer("picky", picky, 1.0)
    with pytest.raises(RewardFailed, match=r"reward 'picky' raised ZeroDivisionError: .*prompt 'Convert May 8"):
        scorer(prompts=PROMPTS, completions=["ab", "b"], completion_ids=[[1], [2]])


def test_none_skips_an_answer_and_numpy_numbers_count():
    import numpy as np

    scorer = Scorer("n", lambda **kw: [None, np.float32(0.5)], 1.0)
    assert scorer(prompts=PROMPTS, completions=["a", "b"], completion_ids=[[1], [2]]) == [None, 0.5]


@pytest.mark.parametrize("name, opts, words", [
    ("regex", {}, r"r.yaml:3: rewards\[0\].pattern: missing"),
    ("regex", {"pattern": "(\\d"}, r"rewards\[0\].pattern: '\(\\\\d' is not a regular expression"),
    ("length", {}, r"rewards\[0\].max_tokens: missing"),
    ("exact_match", {"colum": "answer"}, r"rewards\[0\].colum"),
])
def test_bad_options_name_the_entry(name, opts, words):
    from adapters_sft.errors import UserError

    with pytest.raises(UserError, match=words):
        reward(name, **opts)

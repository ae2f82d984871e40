"""Reward functions for `task: grpo`: plugins in the entry-point group `adapters_sft.rewards`
(the built-ins are declared there too, like a third party's), or a user's own function named
by path in the recipe.

  base.py     the Reward interface, and the call TRL makes (checked: numbers, one per answer)
  builtin.py  exact_match, contains, regex, length, json
  spec.py     the recipe's `rewards:` list -> rewards, checked before any model loads
  run.py      `run`: a finished reward run (task: reward) as a reward
"""

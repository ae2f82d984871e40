"""Built-in fine-tuning strategies, one module each.

They are registered through entry points in pyproject.toml (group `adapters_sft.strategies`),
the same way a third-party package adds its own; see `base.Strategy` for the contract.
"""

"""The recipe's `training:` keys."""

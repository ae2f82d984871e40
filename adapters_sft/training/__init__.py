"""The recipe's `training:` keys, in three parts:

  own_keys.py      the keys that are ours (dropout, layer_lr_decay, early_stopping_patience,
                   mlp_tile_tokens): their options and what they install on the Trainer
  trainer_keys.py  the keys passed on to TRL's SFTConfig (transformers' TrainingArguments for
                   classification): which are ours elsewhere, refused values, number ranges,
                   and the cached field list `validate` checks against without importing TRL
  args.py          the Trainer's config for a recipe: our defaults, then the user's keys
"""

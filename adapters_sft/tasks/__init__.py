"""Tasks: what a run learns and how it is scored (base.py). Built-ins: sft.py (a generative
model, TRL's SFTTrainer) and classification.py (a sequence-classification head, transformers'
Trainer). Each is declared as an entry point (group `adapters_sft.tasks`), as a third party's
would be; `registry.get_task(name)` finds it."""

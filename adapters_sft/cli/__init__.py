"""Command-line verbs, one module each; `main.py` wires them together."""

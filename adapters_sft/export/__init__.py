"""Use a run outside the tool: merge it, export it, and prove each result faithful.

  merge.py      fold what trained into a standalone model; the drift check gates the write
  drift.py      probe texts, logits comparison, per-dtype tolerances
  formats.py    export --format peft | safetensors | gguf, and the GGUF round-trip check
  gguf_file.py  the GGUF writer (Llama, Mistral, Qwen2; byte-level BPE tokenizers)
  ollama.py     the Modelfile written beside a GGUF
"""
from .formats import export_run
from .merge import merge_run

__all__ = ["export_run", "merge_run"]

"""Use a run outside the tool: merge it, export it, and prove each result faithful.

  merge.py      fold what trained into a standalone model; the drift check gates the write
  drift.py      probe texts, logits comparison, per-dtype tolerances
  formats.py    export --format peft | safetensors | gguf, and the GGUF round-trip check
  gguf_file.py  the GGUF writer (Llama, Mistral, Qwen2; llama3 rope; byte-level BPE tokenizers)
  gguf_vocab.py the tokenizer as GGUF metadata, its pre-tokenizer named as llama.cpp names it
  gguf_pre_names.py  llama.cpp's table of pre-tokenizer names by probe hash (copied facts)
  llamacpp.py   llama.cpp itself (optional extra): k-quants and their logits, in child processes
  ollama.py     the Modelfile written beside a GGUF
"""
from .formats import export_run
from .merge import merge_run

__all__ = ["export_run", "merge_run"]

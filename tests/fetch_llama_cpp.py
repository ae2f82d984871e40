"""Put two parts of llama.cpp's source in DIR, from the source release of the llama-cpp-python
that is installed, for the tests that hold our GGUF files against llama.cpp's own:

  models/ggml-vocab-NAME.gguf (+ .inp, .out)   reference vocabularies of Llama-2 (SentencePiece),
        Llama-3 and Qwen2, with llama.cpp's tokenizer test cases and the original tokenizer's ids
        (tests/export/test_gguf_real_vocabs.py)
  convert_hf_to_gguf.py, conversion/, gguf-py/  llama.cpp's own HF -> GGUF converter
        (tests/export/test_gguf_converter.py)

Run by `make llamacpp`; pip's own settings and cache apply to the download.

usage: python tests/fetch_llama_cpp.py DIR
"""
from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

VOCABS = {f"models/ggml-vocab-{n}.gguf{suffix}" for n in ("llama-spm", "llama-bpe", "qwen2")
          for suffix in ("", ".inp", ".out")}
TREES = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/gguf/")


def main(out: Path) -> None:
    version = importlib.metadata.version("llama_cpp_python")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                        "-d", tmp, f"llama-cpp-python=={version}"], check=True)
        stage = Path(tmp) / "llama.cpp"
        with tarfile.open(next(Path(tmp).glob("*.tar.gz"))) as tar:
            for member in tar.getmembers():
                parts = PurePosixPath(member.name).parts
                if not member.isfile() or parts[1:3] != ("vendor", "llama.cpp") or ".." in parts:
                    continue
                inner = "/".join(parts[3:])
                if inner in VOCABS or any(inner == t or (t.endswith("/") and inner.startswith(t)) for t in TREES):
                    (stage / inner).parent.mkdir(parents=True, exist_ok=True)
                    (stage / inner).write_bytes(tar.extractfile(member).read())
        missing = [p for p in (*VOCABS, *TREES) if not (stage / p).exists()]
        if missing:
            sys.exit(f"llama-cpp-python {version}'s source lacks {', '.join(missing)}")
        (stage / "VERSION").write_text(version + "\n")
        shutil.rmtree(out, ignore_errors=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(stage), out)
    print(f"llama.cpp (llama-cpp-python {version}) vocabularies and converter in {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))

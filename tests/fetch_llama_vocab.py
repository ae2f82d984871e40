"""Put llama.cpp's reference vocabularies and their tokenizer test cases (Llama-2 SentencePiece,
Llama-3, Qwen2: models/ggml-vocab-NAME.gguf, .inp, .out) in DIR, from the source release of the
llama-cpp-python that is installed, for tests/export/test_gguf_real_vocabs.py. Run by
`make llamacpp`; pip's own settings and cache apply to the download.

usage: python tests/fetch_llama_vocab.py DIR
"""
from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

NAMES = ("llama-spm", "llama-bpe", "qwen2")


def main(out: Path) -> None:
    version = importlib.metadata.version("llama_cpp_python")
    wanted = {f"ggml-vocab-{n}.gguf{suffix}" for n in NAMES for suffix in ("", ".inp", ".out")}
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                        "-d", tmp, f"llama-cpp-python=={version}"], check=True)
        stage = Path(tmp) / "vocab"
        stage.mkdir()
        with tarfile.open(next(Path(tmp).glob("*.tar.gz"))) as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                if member.isfile() and "/vendor/llama.cpp/models/" in member.name and name in wanted:
                    (stage / name).write_bytes(tar.extractfile(member).read())
        found = {p.name for p in stage.iterdir()}
        if found != wanted:
            sys.exit(f"llama-cpp-python {version}'s source lacks {', '.join(sorted(wanted - found))}")
        shutil.rmtree(out, ignore_errors=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(stage), out)
    print(f"llama.cpp {version} vocabularies in {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))

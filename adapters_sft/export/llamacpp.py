"""llama.cpp itself, for what only it does: its k-quants (q4_k_m, q5_k_m, q6_k, what most
Ollama users run) and their logits, to say what a quantization cost.

It comes from llama-cpp-python (`pip install 'adapters-sft[llamacpp]'`). Every call runs in
a child process (`python -m adapters_sft.export.llamacpp ...`): a crash inside llama.cpp then
becomes a clear failure with nothing written, never a dead process or a crash passed off as
success.

One such crash is known and avoided: on this project's CPU (Xeon with AMX), llama.cpp 0.3.36
decoding a k-quant (or Q4_1) file with its CPU "extra buffer types" (weight repacking, the
AMX kernels) dies with SIGSEGV, and decodes it correctly with them off (`use_extra_bufts =
False`, llama-cli's `--no-repack`). Measured here: default exit 139, repacking off exit 0.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..errors import CheckFailed, UserError

# --outtype -> llama.cpp's file type (LLAMA_FTYPE_MOSTLY_*, in llama.h)
KQUANTS = {"q4_k_m": 15, "q5_k_m": 17, "q6_k": 18}
EXTRA = "pip install 'adapters-sft[llamacpp]' (it builds llama-cpp-python, about 4 minutes on 2 cores)"


def check_installed(outtype: str) -> None:
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        raise UserError(f"--outtype {outtype}: k-quants are made by llama.cpp's own quantizer, "
                        f"which is not installed; {EXTRA}")


def quantize(source: Path, target: Path, outtype: str) -> None:
    """`source` (an f16/f32 GGUF) -> `target` in `outtype`, by llama_model_quantize."""
    _child(["quantize", str(source), str(target), str(KQUANTS[outtype])], f"quantizing to {outtype}")


def logits(path: Path, seqs: list[Any]) -> list[Any]:
    """llama.cpp's float32 logits at every position of each token sequence."""
    import numpy as np
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        request, result = Path(tmp) / "seqs.json", Path(tmp) / "logits.npz"
        request.write_text(json.dumps([[int(t) for t in s.flatten()] for s in seqs]))
        _child(["logits", str(path), str(request), str(result)], f"evaluating {path.name}")
        with np.load(result) as saved:
            return [torch.from_numpy(saved[f"s{i}"].copy()) for i in range(len(seqs))]


def _child(args: list[str], doing: str) -> None:
    done = subprocess.run([sys.executable, "-m", "adapters_sft.export.llamacpp", *args],
                          capture_output=True, text=True)
    if done.returncode != 0:
        how = f"signal {-done.returncode}" if done.returncode < 0 else f"exit status {done.returncode}"
        tail = (done.stderr.strip().splitlines() or ["no message"])[-1][:300]
        raise CheckFailed(f"llama.cpp failed while {doing} ({how}: {tail})")


def _quantize(source: str, target: str, ftype: str) -> None:
    import os

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = int(ftype)
    params.nthread = os.cpu_count() or 1
    if llama_cpp.llama_model_quantize(source.encode(), target.encode(), params) != 0:
        sys.exit("llama_model_quantize returned an error")


def without_repacking() -> None:
    """Load every model in this process with llama.cpp's extra buffer types off (see the
    module doc): llama-cpp-python's `Llama` has no argument for it, so its default model
    parameters are wrapped. Only ever called in our child processes."""
    import llama_cpp
    from llama_cpp import llama as high_level

    default = llama_cpp.llama_model_default_params

    def params() -> Any:
        p = default()
        p.use_extra_bufts = False
        return p

    llama_cpp.llama_model_default_params = params
    high_level.llama_cpp.llama_model_default_params = params


def _logits(path: str, request: str, result: str) -> None:
    import os

    import numpy as np
    from llama_cpp import Llama

    without_repacking()
    seqs = json.loads(Path(request).read_text())
    llm = Llama(model_path=path, n_ctx=max(len(s) for s in seqs) + 8, n_batch=512, logits_all=True,
                n_threads=os.cpu_count() or 1, verbose=False)
    out = {}
    for i, seq in enumerate(seqs):
        llm.reset()
        llm.eval(seq)
        out[f"s{i}"] = np.array(llm.scores[: len(seq)], dtype=np.float32)
    np.savez(result, **out)


if __name__ == "__main__":
    verb, *rest = sys.argv[1:]
    {"quantize": _quantize, "logits": _logits}[verb](*rest)

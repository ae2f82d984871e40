"""`export RUN_DIR --format peft|safetensors|gguf --out DIR`.

    peft         the run's adapter as a folder vanilla `PeftModel.from_pretrained(base, DIR)`
                 loads, with the tokenizer (and its training chat template) beside it
    safetensors  the merged model, exactly as `merge` writes it (drift-checked)
    gguf         the merged model as one GGUF file (f32, f16, bf16 or q8_0) with the tokenizer
                 and chat template embedded, and an Ollama Modelfile; then read back with
                 transformers' GGUF loader and compared with the merged model: logits within
                 the tolerance of the GGUF's dtype, and, for f32/f16, identical greedy answers
"""
from __future__ import annotations

import contextlib
import dataclasses
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import CheckFailed, UserError
from . import drift
from ..run_reader import Opened, open_run
from .merge import MergeResult, check_out, merge_run

FORMATS = ("peft", "safetensors", "gguf")
# GGUF type -> the dtype whose drift tolerance applies; q8_0 is reported, not judged
_JUDGED = {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}


def export_run(run_dir: str | Path, fmt: str, out: str | Path, outtype: str = "f16",
               dtype: str = "auto", overwrite: bool = False,
               echo: Callable[[str], Any] = print) -> dict[str, Any]:
    if fmt not in FORMATS:
        raise UserError(f"--format: '{fmt}' is not one of {', '.join(FORMATS)}")
    if fmt == "safetensors":
        result = merge_run(run_dir, out, dtype, overwrite, echo)
        return {"format": fmt, "out": str(result.out), "drift": dataclasses.asdict(result.drift)}
    if fmt == "peft":
        return export_peft(run_dir, Path(out), overwrite, echo)
    return export_gguf(run_dir, Path(out), outtype, overwrite, echo)


def export_peft(run_dir: str | Path, out: Path, overwrite: bool,
                echo: Callable[[str], Any]) -> dict[str, Any]:
    from ..rundir import staged

    run = open_run(run_dir, "export")
    check_out(out, overwrite, run.path)
    from .card import base_identity, point_adapter_at_base, write_card

    base = base_identity(run.recipe.model)
    with staged(out) as tmp:
        run.strategy.export_peft(run.artifact, tmp)
        point_adapter_at_base(tmp, base)
        run.tokenizer.save_pretrained(tmp)
        write_card(tmp, run, "peft", "")
    echo(f"PEFT adapter written to {out} with a model card (README.md); load it with "
         f"PeftModel.from_pretrained(base, '{out}') on base '{base.ref}'")
    return {"format": "peft", "out": str(out)}


def export_gguf(run_dir: str | Path, out: Path, outtype: str, overwrite: bool,
                echo: Callable[[str], Any]) -> dict[str, Any]:
    from ..models import load_config
    from ..rundir import staged, write_json
    from . import llamacpp
    from .gguf_file import OUTTYPES, check_exportable, write_gguf
    from .card import base_identity, card_summary, write_card
    from .ollama import modelfile

    if outtype not in (*OUTTYPES, *llamacpp.KQUANTS):
        raise UserError(f"--outtype: '{outtype}' is not one of {', '.join((*OUTTYPES, *llamacpp.KQUANTS))}")
    if outtype in llamacpp.KQUANTS:
        llamacpp.check_installed(outtype)
    run = open_run(run_dir, "export")
    check_out(out, overwrite, run.path)
    run.strategy.check_mergeable()
    run.check_base()
    # Refuse what the writer cannot express before spending a merge on it.
    check_exportable(load_config(run.recipe.model, run.recipe.trust_remote_code), run.tokenizer)
    with staged(out) as tmp:
        merged = merge_run(run, tmp / "merged", "float32", echo=echo, keep_model=True)
        written = "f16" if outtype in llamacpp.KQUANTS else outtype  # k-quants start from f16
        name = f"{run.path.name}.{written}.gguf"
        write_gguf(merged.model, run.tokenizer, tmp / name, written, run.recipe.name,
                   base_identity(run.recipe.model), card_summary(run))
        shutil.rmtree(tmp / "merged")
        report = roundtrip(merged, run, tmp, name, written, echo)
        if outtype in llamacpp.KQUANTS and not report["failed"]:
            name = f"{run.path.name}.{outtype}.gguf"
            report["quantized"] = quantize(tmp / report["file"], tmp / name, outtype, merged, echo)
            (tmp / report["file"]).unlink()  # users asked for the k-quant only
            report.update(checked_as=report["file"], file=name, outtype=outtype)
        (tmp / "Modelfile").write_text(modelfile(name, run.tokenizer))
        write_card(tmp, run, "gguf", report["file"])
        write_json(tmp / "export_report.json", report)
        if report["failed"]:
            raise CheckFailed(f"the GGUF did not round-trip: {report['failed']}; nothing was "
                              f"written to {out}")
    echo(f"GGUF written to {out / name}, with an Ollama Modelfile beside it")
    return report


def quantize(source: Path, target: Path, outtype: str, merged: MergeResult,
             echo: Callable[[str], Any]) -> dict[str, Any]:
    """llama.cpp's k-quant of the f16 file, and what it cost, measured in llama.cpp itself:
    logits of both files on the probes (reported, not judged: 4-5 bit weights move them)."""
    from . import llamacpp

    llamacpp.quantize(source, target, outtype)
    d = drift.compare(llamacpp.logits(source, merged.seqs), llamacpp.logits(target, merged.seqs))
    echo(d.line(f"GGUF {outtype} vs f16, both in llama.cpp") +
         f"; {target.stat().st_size / 2**20:.0f} MiB (f16: {source.stat().st_size / 2**20:.0f} MiB)")
    return {"file": target.name, "outtype": outtype, "drift_vs_f16": dataclasses.asdict(d),
            "bytes": target.stat().st_size, "f16_bytes": source.stat().st_size}


def roundtrip(merged: MergeResult, run: Opened, folder: Path, name: str, outtype: str,
              echo: Callable[[str], Any]) -> dict[str, Any]:
    """Read the GGUF back with transformers and compare it with the merged model, on the
    probes (and the merged logits) the merge's drift check used."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..scores.generative import generate

    source = merged.source
    texts = [drift.full_text(r, run.tokenizer) for r in merged.probes]
    prompts = [drift.generation_prompt(r, run.tokenizer) for r in merged.probes]
    with _quiet_tqdm():  # the GGUF loader draws its own bar on a plain tqdm
        loaded = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=name,
                                                      dtype=torch.float32).eval()
    d = drift.compare(merged.logits, drift.logits(loaded, merged.seqs))
    ours = generate(merged.model, run.tokenizer, prompts, 32, 8)
    theirs = generate(loaded, run.tokenizer, prompts, 32, 8)
    same = sum(a == b for a, b in zip(ours, theirs))
    gguf_tok = AutoTokenizer.from_pretrained(str(folder), gguf_file=name)
    tok_same = sum(gguf_tok(t, add_special_tokens=False)["input_ids"] ==
                   run.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts)
    echo(d.line(f"GGUF {outtype} read back by transformers vs merged"))
    echo(f"greedy answers identical on {same}/{len(prompts)} probes ({source}); the GGUF's tokenizer, "
         f"as transformers rebuilds it, encodes {tok_same}/{len(texts)} of them identically"
         + _reader_note(folder / name, tok_same < len(texts)))
    failed = ""
    judged = _JUDGED.get(outtype)
    if judged and not d.within(judged):
        mean, agree = drift.TOLERANCE[judged]
        failed = f"logits beyond the {judged} tolerance (mean <= {mean}, agreement >= {agree:.0%})"
    elif outtype in ("f32", "f16") and same != len(prompts):
        failed = f"greedy answers differ on {len(prompts) - same}/{len(prompts)} prompts"
    return {"format": "gguf", "file": name, "outtype": outtype, "probes": source,
            "drift": dataclasses.asdict(d), "greedy_identical": same, "prompts": len(prompts),
            "tokenizer_identical": tok_same, "failed": failed}


def _reader_note(path: Path, differs: bool) -> str:
    """Why transformers' rebuild of a GGUF tokenizer may differ where llama.cpp's does not:
    its reader knows only some of llama.cpp's pre-tokenizer names and falls back to GPT-2's
    split for the others (SmolLM's `smollm` among them)."""
    if not differs:
        return ""
    from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_PRE_TOKENIZER_SPLITS

    from .gguf_vocab import pre_name

    pre = pre_name(path)
    if pre in GGUF_PRE_TOKENIZER_SPLITS or pre == "gpt-2":
        return ""
    return (f" (transformers' GGUF reader does not know llama.cpp's '{pre}' pre-tokenizer and "
            "splits with GPT-2's rule instead; llama.cpp, which the file is for, encodes them as "
            "the run does; see docs/export.md)")


@contextlib.contextmanager
def _quiet_tqdm() -> Iterator[None]:
    """transformers' GGUF loader draws a plain tqdm bar that its own progress-bar switch does
    not reach; swap it for a pass-through while we read our file back."""
    from transformers import modeling_gguf_pytorch_utils as loader

    old = loader.tqdm
    loader.tqdm = lambda iterable, **kw: iterable
    try:
        yield
    finally:
        loader.tqdm = old

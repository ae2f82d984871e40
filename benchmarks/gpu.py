"""Speed and memory on a GPU: adapters-sft's defaults against a plain PEFT + TRL + bitsandbytes
script written the way their docs show, on 7-8B models, with the plan's estimate beside the
measured peak.

Models are built from published configs (Llama-3.1-8B, Qwen2.5-7B; adapters_sft/plan/configs)
with random weights: weights change neither speed nor memory. A byte-level tokenizer (one token
a byte) and the variable-length rows of benchmarks/batching.py (answers of 20-600 tokens) make
the data; every side packs it into rows of --length tokens. For each model and strategy:

  adapters-sft   the shipped recipe (gpu-24gb/llama-3.1-8b-qlora's settings for qlora; lora and
                 full on the same settings), data.packing=true
  plain          SFTTrainer with a LoraConfig (and BitsAndBytesConfig for QLoRA, with PEFT's
                 prepare_model_for_kbit_training), packing=True, the same batch, length, rank,
                 learning rate; everything else at the libraries' defaults

Measured over the steps after the first (warm-up): tokens/s (real tokens), the peak of CUDA
allocated memory (torch.cuda.max_memory_allocated, reset after the warm-up step's model load),
and model FLOPs utilisation: 6 x parameters x tokens/s over the GPU's dense bf16 peak (the usual
convention; frozen weights skip a third of that work, so LoRA's real utilisation is lower).
A side the plan says cannot fit the GPU is skipped, and says so. Writes gpu.json to --out.

On a lent GPU:  bash benchmarks/gpu.sh [--quick]   (writes under $OUT; the 8B QLoRA pair first)
On a CPU (CI):  python benchmarks/gpu.py --config tiny --steps 2 --out DIR
"""
from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from batching import write_data  # noqa: E402  (the shared variable-length rows)

CONFIGS = {"llama-3.1-8b": "meta-llama--Llama-3.1-8B-Instruct.json",
           "qwen2.5-7b": "Qwen--Qwen2.5-7B-Instruct.json"}
TINY = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 512,
        "max_position_embeddings": 4096, "tie_word_embeddings": False}
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "4090": 165e12, "L4": 121e12}
LORA = {"r": 16, "alpha": 32, "dropout": 0.05}
CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + "
          "'<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def build_model(name: str, folder: Path) -> Path:
    """A random-weight model of the named config, saved with a byte-level tokenizer."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

    if name == "tiny":
        config = AutoConfig.for_model(**TINY)
    else:
        config = AutoConfig.from_pretrained(Path(__file__).parents[1] / "adapters_sft" / "plan"
                                            / "configs" / CONFIGS[name])
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    tok = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(sorted(alphabet))}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>",
                                   eos_token="<|im_end|>", pad_token="<pad>")
    fast.chat_template = CHATML
    config.bos_token_id, config.eos_token_id = fast.bos_token_id, fast.eos_token_id
    config.pad_token_id = fast.pad_token_id
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(folder, safe_serialization=True)
    fast.save_pretrained(folder)
    del model
    return folder


def ours(model: Path, strategy: str, train: Path, a: argparse.Namespace, work: Path) -> tuple[Any, Any]:
    """The shipped recipe's settings (dropout 0, activation offloading, no fp32 cast)."""
    from adapters_sft.recipe import load_recipe
    from adapters_sft.trainer import build_trainer

    overrides = [f"model={model}", f"data.train={train}", "data.eval=null", "eval.metric=none",
                 f"data.max_length={a.length}", "data.packing=true", "data.template=chatml",
                 f"training.max_steps={a.steps}",
                 f"training.per_device_train_batch_size={a.batch}", "training.gradient_accumulation_steps=1",
                 "training.logging_steps=1", f"output_dir={work}"]
    if strategy != "qlora":
        overrides.append(f"strategy={strategy}")
        overrides += [f"strategy.{k}={v}" for k, v in LORA.items()] if strategy == "lora" else []
    recipe = load_recipe("gpu-24gb/llama-3.1-8b-qlora", overrides)
    return build_trainer(recipe, work)[0], recipe


def plain(model: Path, strategy: str, train: Path, a: argparse.Namespace, work: Path) -> Any:
    """The script their docs show: from_pretrained (4-bit for QLoRA), LoraConfig, SFTTrainer."""
    import torch
    from datasets import load_dataset
    from peft import LoraConfig, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
    from trl import SFTConfig, SFTTrainer

    cuda = torch.cuda.is_available()
    kwargs: dict[str, Any] = {"dtype": torch.bfloat16 if cuda else torch.float32}
    if strategy == "qlora":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=kwargs["dtype"])
    net = AutoModelForCausalLM.from_pretrained(model, device_map={"": 0} if cuda else "cpu", **kwargs)
    if strategy == "qlora":
        net = prepare_model_for_kbit_training(net)
    peft = None if strategy == "full" else LoraConfig(
        r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
        target_modules="all-linear", task_type="CAUSAL_LM")
    args = SFTConfig(output_dir=str(work), max_length=a.length, packing=True, max_steps=a.steps,
                     per_device_train_batch_size=a.batch, learning_rate=2e-4, bf16=cuda,
                     logging_steps=1, save_strategy="no", report_to="none")
    return SFTTrainer(model=net, args=args, processing_class=AutoTokenizer.from_pretrained(model),
                      train_dataset=load_dataset("json", data_files=str(train))["train"],
                      peft_config=peft)


class Timer:
    """Wraps trainer.training_step: real tokens and time of every step after the first."""

    def __init__(self, trainer: Any) -> None:
        import torch

        self.cuda = torch.cuda.is_available()
        self.calls = self.tokens = self.steps = 0
        self.seconds = 0.0
        step = trainer.training_step

        def timed(model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            self.sync()
            t0 = time.perf_counter()
            out = step(model, inputs, *args, **kwargs)
            self.sync()
            if self.calls == 1:  # the warm-up step: not timed; the peak is measured from here
                self.reset_peak()
                return out
            mask = inputs.get("attention_mask")
            self.tokens += int(mask.sum()) if mask is not None else inputs["input_ids"].numel()
            self.seconds += time.perf_counter() - t0
            self.steps += 1
            return out

        trainer.training_step = timed

    def sync(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize()

    def reset_peak(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()


def run_side(side: str, model: Path, strategy: str, train: Path, a: argparse.Namespace) -> dict[str, Any]:
    """One side at `a.length`; the model folder is the one built once for every side."""
    import torch

    from adapters_sft.measure import peak_memory_gb
    from adapters_sft.plan import estimate
    from adapters_sft.plan.target import this_machine

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory(prefix=f"gpu-{side}-") as tmp:
        if side == "adapters-sft":
            trainer, recipe = ours(model, strategy, train, a, Path(tmp))
            planned = estimate(recipe, this_machine())
        else:
            trainer, planned = plain(model, strategy, train, a, Path(tmp)), None
        timer = Timer(trainer)
        trainer.train()
    # 4-bit weights are packed two to a byte
    params = sum(p.numel() * (2 if p.dtype == torch.uint8 else 1) for p in trainer.model.parameters())
    speed = timer.tokens / timer.seconds if timer.seconds > 0 else 0.0
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    peak_flops = next((v for k, v in PEAK_BF16.items() if k in device), None)
    row = {"side": side, "strategy": strategy, "steps_timed": timer.steps, "tokens": timer.tokens,
           "seconds": round(timer.seconds, 3), "tokens_per_s": round(speed, 1),
           "peak_gib": peak_memory_gb(), "parameters": params,
           "mfu": round(6 * params * speed / peak_flops, 4) if peak_flops else None}
    if planned is not None:
        row["planned_gib"] = round(planned.tensors / 2**30, 3)
        row["plan_fits"] = planned.fits
    del trainer
    return row


def run_length(name: str, model: Path, strategy: str, train: Path, a: argparse.Namespace,
               length: int) -> list[dict[str, Any]]:
    """Both sides at one length (or why not); each row is written as soon as it is measured."""
    from adapters_sft.plan import estimate
    from adapters_sft.plan.target import this_machine
    from adapters_sft.recipe import load_recipe

    check = load_recipe("gpu-24gb/llama-3.1-8b-qlora", [
        f"model={model}", f"strategy={strategy}", f"data.max_length={length}",
        f"training.per_device_train_batch_size={a.batch}", "training.gradient_accumulation_steps=1"])
    if not estimate(check, this_machine()).fits:
        print(f"{name} {strategy} {length}: skipped, the plan says it does not fit", flush=True)
        return [{"model": name, "strategy": strategy, "length": length,
                 "skipped": "the plan says it does not fit"}]
    rows = []
    side_args = argparse.Namespace(**{**vars(a), "length": length})
    for side in ("adapters-sft", "plain"):
        try:
            row = {"model": name, "length": length, **run_side(side, model, strategy, train, side_args)}
        except Exception as exc:  # an OOM in one side must not lose the others
            row = {"model": name, "strategy": strategy, "length": length, "side": side,
                   "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        rows.append(row)
        print(json.dumps(row), flush=True)  # gpu.sh keeps the log: a run cut short keeps this row
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", action="append", choices=[*CONFIGS, "tiny"])
    parser.add_argument("--strategy", action="append", choices=["qlora", "lora", "full"])
    parser.add_argument("--length", type=int, action="append",
                        help="rows of this many tokens; repeat for several (default 2048)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=6, help="training steps; the first is warm-up")
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    a = parser.parse_args()
    results: list[dict[str, Any]] = []
    a.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gpu-bench-") as tmp:
        train, _ = write_data(Path(tmp), a.rows, 1)
        for name in a.config or ["llama-3.1-8b"]:
            model = build_model(name, Path(tmp) / name)  # once: every side and length reuses it
            for strategy in a.strategy or ["qlora", "lora", "full"]:
                for length in a.length or [2048]:
                    results += run_length(name, model, strategy, train, a, length)
                    (a.out / "gpu.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {a.out / 'gpu.json'}")


if __name__ == "__main__":
    main()

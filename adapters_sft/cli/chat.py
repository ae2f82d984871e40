"""`adapters-sft chat RUN_DIR|MODEL`: talk to a run (or a merged model) in the terminal.

Answers stream token by token, rendered with the run's own chat template; the conversation is
kept as history. `/reset` starts over, `/exit` (or Ctrl-D) leaves. Reads plain lines from stdin,
so it also runs from a pipe: `printf 'hi\\n/exit\\n' | adapters-sft chat runs/x`.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from ..errors import UserError
from .args import number

HELP = "type a message; /reset clears the conversation, /exit (or Ctrl-D) leaves"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("chat", help="interactive chat with a run or a model (streams, keeps history)")
    p.add_argument("model", help="run directory, or a model folder / hub id / alias")
    p.add_argument("--system", help="a system message to start each conversation with")
    p.add_argument("--max-new-tokens", type=number(int, 1), default=256)
    p.add_argument("--temperature", type=number(float, 0, inclusive=False),
                   help="sample instead of greedy decoding (above 0)")
    p.add_argument("--top-p", type=number(float, 0, inclusive=False, high=1))
    p.set_defaults(run=run)


class Session:
    """One conversation: history in, streamed answer out."""

    def __init__(self, model: Any, tokenizer: Any, max_new_tokens: int, system: str | None = None,
                 sampling: dict[str, Any] | None = None) -> None:
        if not tokenizer.chat_template:
            raise UserError("chat: this model's tokenizer has no chat template; use "
                            "`adapters-sft generate --prompt` for plain-text models")
        self.model, self.tokenizer, self.max_new_tokens = model.eval(), tokenizer, max_new_tokens
        self.system, self.sampling = system, sampling or {}
        self.history: list[dict[str, str]] = []
        self.reset()

    def reset(self) -> None:
        self.history = [{"role": "system", "content": self.system}] if self.system else []

    def reply(self, text: str, write: Callable[[str], Any]) -> str:
        import torch
        from transformers import TextStreamer

        from ..evaluate import stop_ids

        self.history.append({"role": "user", "content": text})
        enc = self.tokenizer.apply_chat_template(self.history, add_generation_prompt=True,
                                                 return_tensors="pt", return_dict=True)
        enc = {k: v.to(next(self.model.parameters()).device) for k, v in enc.items()}
        streamer = TextStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        streamer.on_finalized_text = lambda chunk, stream_end=False: write(chunk)
        with torch.no_grad():
            out = self.model.generate(**enc, streamer=streamer, max_new_tokens=self.max_new_tokens,
                                      pad_token_id=self.tokenizer.pad_token_id,
                                      eos_token_id=stop_ids(self.model, self.tokenizer),
                                      **({"do_sample": False} | self.sampling))
        answer = self.tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        self.history.append({"role": "assistant", "content": answer.strip()})
        return answer


def loop(session: Session, read: Callable[[str], str], write: Callable[[str], Any]) -> None:
    write(f"adapters-sft chat: {HELP}\n")
    while True:
        try:
            line = read("you> ").strip()
        except EOFError:
            write("\n")
            return
        if line == "/exit":
            return
        if line == "/reset":
            session.reset()
            write("(conversation cleared)\n")
        elif line.startswith("/"):
            write(f"unknown command {line}; {HELP}\n")
        elif line:
            write("bot> ")
            session.reply(line, write)
            write("\n")


def run(args: argparse.Namespace) -> int:
    from ..runs import load_model_or_run
    from .train import quiet_libraries

    quiet_libraries()
    model, tokenizer = load_model_or_run(args.model, "chat")
    sampling: dict[str, Any] = {}
    if args.temperature is not None:
        sampling = {"do_sample": True, "temperature": args.temperature}
        if args.top_p is not None:
            sampling["top_p"] = args.top_p
    session = Session(model, tokenizer, args.max_new_tokens, args.system, sampling)

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    loop(session, input, write)
    return 0

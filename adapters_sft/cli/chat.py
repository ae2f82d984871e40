"""`adapters-sft chat RUN_DIR|MODEL`: talk to a run (or a merged model) in the terminal.

Answers stream token by token, rendered with the run's own chat template; the conversation is
kept as history. Ctrl-C stops the reply being written (what was written stays in the history)
and the session goes on. A message spans lines between two `\"\"\"` lines, or with a `\\` at the
end of each line but the last. `/save FILE` writes the conversation as one JSONL row in the
`messages` format `train` reads; `/reset` starts over; `/exit` or `/quit` (or Ctrl-D) leaves.
Reads plain lines from stdin, so it also runs from a pipe:
`printf 'hi\\n/exit\\n' | adapters-sft chat runs/x`.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable

from ..errors import UserError
from .args import number

HELP = ('type a message (several lines: between two """ lines, or end each line but the last '
        "with \\); Ctrl-C stops a reply; /save FILE writes the conversation, /reset clears it, "
        "/exit or /quit (or Ctrl-D) leaves")
BLOCK = '"""'



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
        """Stream the answer to `text`; Ctrl-C (SIGINT) ends it at the next token, and what was
        written so far is the answer kept in the history."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextStreamer

        from ..scores.generative import cache_agrees, stop_ids

        self.history.append({"role": "user", "content": text})
        enc = self.tokenizer.apply_chat_template(self.history, add_generation_prompt=True,
                                                 return_tensors="pt", return_dict=True)
        enc = {k: v.to(next(self.model.parameters()).device) for k, v in enc.items()}
        streamer = TextStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        streamer.on_finalized_text = lambda chunk, stream_end=False: write(chunk)
        stopped = threading.Event()

        class Stop(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kw: Any) -> Any:
                return torch.full((input_ids.shape[0],), stopped.is_set(), dtype=torch.bool)

        with _sigint_sets(stopped), torch.no_grad():
            out = self.model.generate(**enc, streamer=streamer, max_new_tokens=self.max_new_tokens,
                                      pad_token_id=self.tokenizer.pad_token_id,
                                      eos_token_id=stop_ids(self.model, self.tokenizer),
                                      use_cache=cache_agrees(self.model),
                                      stopping_criteria=StoppingCriteriaList([Stop()]),
                                      **({"do_sample": False} | self.sampling))
        answer = self.tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        self.history.append({"role": "assistant", "content": answer.strip()})
        if stopped.is_set():
            write(" (stopped)")
        return answer

    def save(self, path: Path) -> str:
        """The conversation as one JSONL row {"messages": [...]}; an existing file is kept."""
        if not any(m["role"] == "assistant" for m in self.history):
            return "nothing to save yet"
        try:
            with open(path, "x", encoding="utf-8") as out:
                out.write(json.dumps({"messages": self.history}, ensure_ascii=False) + "\n")
        except FileExistsError:
            return f"{path} exists; give another name (nothing was written)"
        except OSError as exc:
            return f"cannot write {path}: {exc.strerror}"
        return f"saved {len(self.history)} messages to {path}"


class _sigint_sets:
    """While a reply is written, Ctrl-C sets `event` instead of raising, so generation stops at
    the next token and the session goes on (the main thread only: signals go there)."""

    def __init__(self, event: threading.Event) -> None:
        self.event, self.before = event, None

    def __enter__(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self.before = signal.signal(signal.SIGINT, lambda *_: self.event.set())

    def __exit__(self, *exc: Any) -> None:
        if self.before is not None:
            signal.signal(signal.SIGINT, self.before)


def read_message(read: Callable[[str], str]) -> str:
    """One message: a line; lines ending in a backslash, joined; or lines between two BLOCK
    lines. EOFError when input ends (inside a message too: an unfinished one is dropped)."""
    line = read("you> ")
    if line.strip() == BLOCK:
        lines = []
        while (more := read("... ")).strip() != BLOCK:
            lines.append(more)
        return "\n".join(lines).strip()
    lines = [line]
    while lines[-1].endswith("\\"):
        lines[-1] = lines[-1][:-1]
        lines.append(read("... "))
    return "\n".join(lines).strip()


def loop(session: Session, read: Callable[[str], str], write: Callable[[str], Any]) -> None:
    write(f"adapters-sft chat: {HELP}\n")
    while True:
        try:
            line = read_message(read)
        except EOFError:
            write("\n")
            return
        except KeyboardInterrupt:  # at the prompt: drop what was typed, stay
            write("\n(Ctrl-C: the message was dropped; /exit or Ctrl-D leaves)\n")
            continue
        command, _, rest = line.partition(" ")
        if command in ("/exit", "/quit"):
            return
        if command == "/reset":
            session.reset()
            write("(conversation cleared)\n")
        elif command == "/save":
            write(f"({session.save(Path(rest.strip()).expanduser())})\n" if rest.strip()
                  else "(/save FILE: give a file name, e.g. /save chat.jsonl)\n")
        elif line.startswith("/"):
            write(f"unknown command {command}; {HELP}\n")
        elif line:
            write("bot> ")
            try:
                session.reply(line, write)
            except KeyboardInterrupt:  # before generation started: the message is dropped
                if session.history and session.history[-1]["role"] == "user":
                    session.history.pop()
                write(" (stopped)")
            write("\n")


def run(args: argparse.Namespace) -> int:
    from ..run_reader import load_model_or_run
    from .args import quiet_libraries

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

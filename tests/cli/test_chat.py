"""chat: history, /reset, /exit, streaming; driven through stdin (a pipe) and a pseudo-terminal."""
from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

from adapters_sft.cli.chat import Session, loop


def _session(tiny_recipe, **kw):
    from adapters_sft import load_run
    from adapters_sft.trainer import train

    run = train(tiny_recipe("lora", "eval.metric=none"), echo=lambda line: None).run_dir
    model, tok, _ = load_run(run)
    return run, Session(model, tok, max_new_tokens=6, **kw)


def test_history_reset_and_streaming(tiny_recipe):
    run, session = _session(tiny_recipe, system="be brief")
    chunks: list[str] = []
    lines = iter(["what is cat", "what is dog", "/reset", "hi", "/exit", "never read"])
    loop(session, lambda prompt: next(lines), chunks.append)
    # history after /reset: the system message, then one exchange
    assert [m["role"] for m in session.history] == ["system", "user", "assistant"]
    assert session.history[1]["content"] == "hi"
    assert "(conversation cleared)\n" in chunks and next(lines) == "never read"


def test_history_reaches_the_template(tiny_recipe, monkeypatch):
    _, session = _session(tiny_recipe)
    seen = []
    original = session.tokenizer.apply_chat_template
    monkeypatch.setattr(session.tokenizer, "apply_chat_template",
                        lambda msgs, **kw: seen.append([m["content"] for m in msgs]) or original(msgs, **kw))
    session.reply("what is cat", lambda s: None)
    session.reply("what is dog", lambda s: None)
    assert seen[1][0] == "what is cat" and seen[1][-1] == "what is dog" and len(seen[1]) == 3


def test_streamed_pieces_add_up_to_the_answer(tiny_recipe):
    _, session = _session(tiny_recipe)
    pieces: list[str] = []
    answer = session.reply("what is cat", pieces.append)
    assert "".join(pieces).strip() == answer.strip() == session.history[-1]["content"]


def _cli(run) -> list[str]:
    return [sys.executable, "-m", "adapters_sft", "chat", str(run), "--max-new-tokens", "4"]


def test_chat_through_stdin(tiny_recipe):
    run, _ = _session(tiny_recipe)
    done = subprocess.run(_cli(run), input="what is cat\n/reset\n/exit\n", capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("you> ") == 3 and "bot> " in done.stdout and "(conversation cleared)" in done.stdout


def test_chat_through_a_pseudo_terminal(tiny_recipe):
    run, _ = _session(tiny_recipe)
    leader, follower = pty.openpty()
    proc = subprocess.Popen(_cli(run), stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    seen = b""

    def read_until(marker: bytes, count: int) -> None:
        nonlocal seen
        deadline = time.time() + 120
        while seen.count(marker) < count and time.time() < deadline:
            if select.select([leader], [], [], 1)[0]:
                try:
                    seen += os.read(leader, 4096)
                except OSError:
                    return

    read_until(b"you> ", 1)
    os.write(leader, b"what is cat\n")
    read_until(b"you> ", 2)
    os.write(leader, b"/exit\n")
    assert proc.wait(timeout=60) == 0
    os.close(leader)
    assert seen.count(b"you> ") == 2 and b"bot> " in seen, seen


def _reader(lines):
    it = iter(lines)

    def read(prompt):
        try:
            return next(it)
        except StopIteration:
            raise EOFError from None
    return read


def test_a_message_spans_lines_in_a_block_or_with_backslashes():
    from adapters_sft.cli.chat import read_message

    assert read_message(_reader(['"""', "Convert this date.", "", "July 4, 1976", '"""'])) == \
        "Convert this date.\n\nJuly 4, 1976"
    assert read_message(_reader(["Convert this date.\\", "July 4, 1976"])) == "Convert this date.\nJuly 4, 1976"
    assert read_message(_reader(["one line"])) == "one line"


def test_ctrl_c_stops_the_reply_only_and_the_history_goes_on(tiny_recipe):
    import signal

    _, session = _session(tiny_recipe)
    session.max_new_tokens = 200
    pieces: list[str] = []

    def write(chunk):
        pieces.append(chunk)
        if "bot> " in pieces and len(pieces) - pieces.index("bot> ") == 3:  # mid-reply: Ctrl-C
            os.kill(os.getpid(), signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)
    loop(session, _reader(["what is cat", "what is dog", "/quit", "never read"]), write)
    assert signal.getsignal(signal.SIGINT) is before  # our handler lived only during the reply
    assert " (stopped)" in pieces
    roles = [m["role"] for m in session.history]
    assert roles == ["user", "assistant", "user", "assistant"]  # the second message was answered
    generated = len(session.tokenizer(session.history[1]["content"])["input_ids"])
    assert generated < 200


def test_save_writes_a_row_train_reads_and_never_overwrites(tiny_recipe, tmp_path):
    from adapters_sft.data.load import read_split

    _, session = _session(tiny_recipe)
    out = tmp_path / "chat.jsonl"
    said: list[str] = []
    loop(session, _reader([f"/save {out}"]), said.append)
    assert "(nothing to save yet)\n" in said and not out.exists()
    # a finished exchange (the tiny model's answers are often empty, which train refuses)
    session.history = [{"role": "user", "content": "what is cat"}, {"role": "assistant", "content": "animal"}]
    loop(session, _reader([f"/save {out}", f"/save {out}", "/exit"]), said.append)
    assert f"(saved 2 messages to {out})\n" in said
    assert f"({out} exists; give another name (nothing was written))\n" in said
    split, fmt = read_split(str(out), "data.train")
    assert fmt == "messages" and split.rows[0]["messages"] == session.history

"""Chat with a run from the page: the CLI's own chat session (cli/chat.py: the run's chat
template, its stop tokens, greedy decoding), one per run, loaded on first use and kept."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable


class Chats:
    def __init__(self, max_new_tokens: int = 128) -> None:
        self.max_new_tokens = max_new_tokens
        self._sessions: dict[Path, Any] = {}
        self._locks: dict[Path, threading.Lock] = {}
        self._guard = threading.Lock()

    def reply(self, run: Path, message: str, write: Callable[[str], Any], reset: bool = False) -> str:
        """Stream the answer to `message` through `write`; one conversation per run."""
        with self._guard:
            lock = self._locks.setdefault(run, threading.Lock())
        with lock:  # one answer at a time per run: the history is shared
            session = self._sessions.get(run)
            if session is None:
                from ..cli.chat import Session
                from ..run_reader import load_run

                model, tokenizer, _ = load_run(run, "chat")
                session = self._sessions[run] = Session(model, tokenizer, self.max_new_tokens)
            if reset:
                session.reset()
            return session.reply(message, write)

"""The UI's long operations: each is the CLI itself (`adapters-sft train ...`, `merge`, `export`,
`plan`, ...) started as a subprocess, exactly as the command shown to the user, with its output
in a log file. The page polls them, so closing the browser changes nothing; a job runs in its
own session, so it outlives a Ctrl-C of the UI server too. Stop sends SIGINT to the job's whole
process group, which is what Ctrl-C in a terminal does: training saves a checkpoint after the
step in flight and leaves a resumable run (`--nproc` runs included: every process hears it).
"""
from __future__ import annotations

import itertools
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

PROGRAM = "adapters-sft"


def program() -> str:
    """The `adapters-sft` script of this installation (beside this Python), else on PATH."""
    beside = Path(sys.executable).with_name(PROGRAM)
    return str(beside) if beside.is_file() else (shutil.which(PROGRAM) or PROGRAM)


class Job:
    def __init__(self, number: int, argv: list[str], cwd: Path, logs: Path) -> None:
        self.id = number
        self.argv = argv
        self.command = shlex.join([PROGRAM, *argv])  # what runs, as the user would type it
        self.log = logs / f"job-{number}.log"
        self.started = time.time()
        self.stopped = False
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen([program(), *argv], cwd=cwd, stdout=out,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True,
                                            env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def state(self) -> str:
        code = self.process.poll()
        if code is None:
            return "running"
        return "done" if code == 0 else f"stopped (exit {code})" if self.stopped else f"failed (exit {code})"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.stopped = True
            os.killpg(self.process.pid, signal.SIGINT)

    def output(self, limit: int = 20000) -> str:
        """The end of the job's output; progress bars' carriage returns kept to their last state."""
        data = self.log.read_bytes()[-limit:].decode("utf-8", "replace")
        return "\n".join(line.rsplit("\r", 1)[-1] for line in data.split("\n"))

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "command": self.command, "state": self.state(),
                "verb": self.argv[0], "started": self.started, "output": self.output()}


class Jobs:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.logs = root / ".adapters-sft-ui" / "jobs"
        self._jobs: dict[int, Job] = {}
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    def start(self, argv: list[str]) -> Job:
        self.logs.mkdir(parents=True, exist_ok=True)
        with self._lock:
            job = Job(next(self._numbers), argv, self.root, self.logs)
            self._jobs[job.id] = job
        return job

    def get(self, number: int) -> Job | None:
        return self._jobs.get(number)

    def all(self) -> list[Job]:
        return sorted(self._jobs.values(), key=lambda j: -j.id)

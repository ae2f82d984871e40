"""The modes of the files a result is made of (a run, a merge, an export, the converted model),
in a module of its own that imports nothing of ours: the run directory and the model loader
both use it."""
from __future__ import annotations

import os
from pathlib import Path


def _umask() -> int:
    current = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(current)
    return current


def usual_modes(folder: Path) -> None:
    """Give every file and folder below `folder` the modes the user's umask gives new files
    (0644 / 0755 for the usual 022). Some writers save through a private temp file (0600:
    transformers' save_pretrained for the weights), which would leave the weights alone
    unreadable to the group that can read every other file of the result."""
    mask = _umask()
    for root, dirs, files in os.walk(folder):
        os.chmod(root, 0o777 & ~mask)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                executable = os.stat(path).st_mode & 0o111
                os.chmod(path, (0o777 if executable else 0o666) & ~mask)

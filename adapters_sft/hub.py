"""The model hub, asked once: can it be reached from here?

A name that can be a hub id (`org/name`) goes to the hub only when the hub answers. When it
does not (no network, `HF_HUB_OFFLINE=1`), huggingface_hub is switched to offline mode for the
rest of the process, so a cached model still loads and anything else fails at once, where
huggingface_hub would retry each file with backoff for half a minute, printing every retry.
"""
from __future__ import annotations

import os
import re
import socket
import sys
from functools import lru_cache
from urllib.parse import urlsplit

# huggingface_hub's own rule for a repo id (validate_repo_id), written out: it is cheap to
# check here and the library's check needs its import
_REPO_ID = re.compile(r"^(?:[\w.-]+/)?[\w.-]+$")
PROBE_SECONDS = 3.0


def can_be_hub_id(ref: str) -> bool:
    return (len(ref) <= 96 and bool(_REPO_ID.match(ref)) and "--" not in ref and ".." not in ref
            and not ref.startswith(("-", ".")) and not ref.endswith((".", "-")))


def _offline_by_env() -> bool:
    return any(os.environ.get(name, "").upper() in ("1", "ON", "YES", "TRUE")
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


@lru_cache(maxsize=1)
def offline_reason() -> str:
    """'' when the hub answers one TCP connection (PROBE_SECONDS at most), else why a hub id
    can only come from the local cache; then the process is switched to offline mode (see the
    module's docstring). Asked once per process."""
    if _offline_by_env():
        why = "offline mode is on (HF_HUB_OFFLINE)"
    else:
        url = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            with socket.create_connection((url.hostname or "", port), timeout=PROBE_SECONDS):
                return ""
        except OSError as exc:
            why = (f"the hub ({url.hostname}) cannot be reached from here "
                   f"({exc.strerror or type(exc).__name__})")
    os.environ["HF_HUB_OFFLINE"] = "1"  # for libraries not yet imported, and child processes
    for module in ("huggingface_hub.constants", "datasets.config"):
        if module in sys.modules:
            setattr(sys.modules[module], "HF_HUB_OFFLINE", True)
    return why

"""A UI server on a free port, serving a temporary folder, in a thread of the test process."""
from __future__ import annotations

import json
import shutil
import threading
import urllib.error
import urllib.request
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Iterator

import pytest


class Client:
    def __init__(self, url: str, root: Path, token: str | None = None) -> None:
        self.url, self.root = url.split("?")[0], root
        self.token = token or (url.split("?token=")[1] if "?token=" in url else None)

    def request(self, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        sent = {"Content-Type": "application/json", **({"X-Token": self.token} if self.token else {}),
                **(headers or {})}
        req = urllib.request.Request(self.url.rstrip("/") + path, data=data, headers=sent)
        try:
            with urllib.request.urlopen(req, timeout=600) as response:
                raw, status = response.read(), response.status
                kind = response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            raw, status, kind = exc.read(), exc.code, exc.headers.get("Content-Type", "")
        if kind.startswith("application/json"):
            return status, json.loads(raw)
        return status, raw.decode() if kind.startswith("text/") else raw

    def get(self, path: str, **kw: Any) -> Any:
        status, data = self.request(path, **kw)
        assert status == 200, data
        return data

    def post(self, path: str, body: Any) -> Any:
        status, data = self.request(path, body)
        assert status == 200, data
        return data


@contextmanager
def running(root: Path, host: str = "127.0.0.1", token: str | None = None,
            require_token: bool = True) -> Iterator[Client]:
    """The client carries the server's token: the one given, or the one it made (its URL's)."""
    from adapters_sft.ui.server import build

    server, url = build(root, host, 0, token, require_token)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Client(url, root, token)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def ui(tmp_path: Path) -> Iterator[Client]:
    root = tmp_path / "work"
    root.mkdir()
    with running(root) as client:
        yield client


CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # what this closed network needs: no background connections, no sandbox as root
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,1000", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()

"""The UI's HTTP server: Python's own ThreadingHTTPServer, a JSON API (api.py), and one static
page (static/). Each request runs in its own thread, so a chat answer or a slow listing never
blocks the page; long operations are CLI subprocesses (jobs.py).

Safe by default: it binds to 127.0.0.1; another address needs an access token, which every
API request must carry (header X-Token; the page takes it from its URL, ?token=...). Requests
whose Host is not the address served are refused (a web page elsewhere cannot reach the API
through DNS rebinding), and every POST must be JSON (a cross-site form cannot send one).
"""
from __future__ import annotations

import hmac
import json
import mimetypes
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from ..errors import UserError
from . import api
from .chat import Chats
from .jobs import Jobs

STATIC = Path(__file__).parent / "static"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class App:
    """What the handlers share: the served folder, the jobs, the chat sessions."""

    def __init__(self, root: Path, token: str | None, hosts: set[str] | None) -> None:
        self.root, self.token, self.hosts = root.resolve(), token, hosts
        self.jobs = Jobs(self.root)
        self.chats = Chats()


def make_handler(app: App) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "adapters-sft-ui"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: the terminal is the user's
            pass

        # --- plumbing -----------------------------------------------------------------------
        def _send(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, data: Any, status: int = 200) -> None:
            self._send(status, json.dumps(data).encode(), "application/json")

        def _allowed(self) -> bool:
            host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
            if app.hosts is not None and host not in app.hosts:
                self._json({"error": f"host '{host}' is not served here"}, HTTPStatus.FORBIDDEN)
                return False
            # the header from the page's requests; the query for pictures the browser fetches itself
            given = self.headers.get("X-Token") or parse_qs(urlparse(self.path).query).get("token", [""])[0]
            if app.token and self.path.startswith("/api/") and not hmac.compare_digest(given, app.token):
                self._json({"error": "access token missing or wrong: open the URL the server "
                                     "printed (it ends in ?token=...)"}, HTTPStatus.UNAUTHORIZED)
                return False
            return True

        def _body(self) -> dict[str, Any]:
            if not (self.headers.get("Content-Type") or "").startswith("application/json"):
                raise UserError("requests must be JSON (Content-Type: application/json)")
            size = int(self.headers.get("Content-Length") or 0)
            data = json.loads(self.rfile.read(size) or b"{}")
            if not isinstance(data, dict):
                raise UserError("the request body must be a JSON object")
            return data

        def _guard(self, work: Any) -> None:
            if not self._allowed():
                return
            try:
                work()
            except UserError as exc:  # the CLI's own one-line message
                self._json({"error": str(exc)}, HTTPStatus.BAD_REQUEST)
            except (KeyError, ValueError) as exc:
                self._json({"error": f"bad request: {exc}"}, HTTPStatus.BAD_REQUEST)

        # --- routes ---------------------------------------------------------------------------
        def do_GET(self) -> None:
            self._guard(self._get)

        def do_POST(self) -> None:
            self._guard(self._post)

        def _get(self) -> None:
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            path = url.path
            if path in ("/", "/index.html"):
                return self._static("index.html")
            if path.startswith("/static/"):
                return self._static(path[len("/static/"):])
            if path == "/api/recipes":
                return self._json(api.recipes(app.root))
            if path == "/api/recipe":
                return self._json(api.recipe(app.root, query["name"]))
            if path == "/api/runs":
                return self._json(api.runs(app.root))
            if path == "/api/run":
                return self._json(api.run(app.root, query["path"]))
            if path == "/api/run-file":
                file = api.run_file(app.root, query["path"], query["name"])
                return self._send(200, file.read_bytes(), "image/png")
            if path == "/api/jobs":
                return self._json([job.describe() for job in app.jobs.all()])
            self._json({"error": f"no such page: {path}"}, HTTPStatus.NOT_FOUND)

        def _static(self, name: str) -> None:
            file = (STATIC / name).resolve()
            if not file.is_relative_to(STATIC.resolve()) or not file.is_file():
                return self._json({"error": f"no such file: {name}"}, HTTPStatus.NOT_FOUND)
            kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
            self._send(200, file.read_bytes(), kind + ("; charset=utf-8" if kind.startswith("text/") else ""))

        def _post(self) -> None:
            path, body = urlparse(self.path).path, self._body()
            if path == "/api/validate":
                return self._json(api.validate(app.root, str(body["recipe"]),
                                               [str(o) for o in body.get("overrides", [])]))
            if path.startswith("/api/do/"):
                verb = path[len("/api/do/"):]
                if verb == "train":
                    checked = api.validate(app.root, str(body["recipe"]), [str(o) for o in body.get("overrides", [])])
                    if not checked["ok"]:
                        return self._json(checked, HTTPStatus.BAD_REQUEST)
                job = app.jobs.start(api.command(app.root, verb, body))
                return self._json(job.describe())
            if path == "/api/stop":
                job = app.jobs.get(int(body["id"]))
                if job is None:
                    raise UserError(f"no job {body['id']}")
                job.stop()
                return self._json(job.describe())
            if path == "/api/chat":
                return self._chat(body)
            self._json({"error": f"no such operation: {path}"}, HTTPStatus.NOT_FOUND)

        def _chat(self, body: dict[str, Any]) -> None:
            """The answer streams as it is generated (chunked text)."""
            run = api.inside(app.root, str(body["run"]))
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

            def write(text: str) -> None:
                data = text.encode()
                if data:
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    self.wfile.flush()

            try:
                app.chats.reply(run, str(body["message"]), write, bool(body.get("reset")))
            except UserError as exc:
                write(f"\n[error] {exc}")
            self.wfile.write(b"0\r\n\r\n")

    return Handler


def build(root: Path, host: str = "127.0.0.1", port: int = 7860,
          token: str | None = None) -> tuple[ThreadingHTTPServer, str]:
    """(server listening for the UI of the runs and recipes in `root`, its URL)."""
    if host not in LOOPBACK and not token:
        raise UserError(f"--host {host}: other machines could reach the UI, which starts "
                        "training and reads runs; add --token SECRET (every request must carry "
                        "it), or keep --host 127.0.0.1")
    # on loopback, only requests addressed to it; elsewhere the token is what guards
    hosts = set(LOOPBACK) if host in LOOPBACK else None
    app = App(root, token, hosts)
    try:
        server = ThreadingHTTPServer((host, port), make_handler(app))
    except OSError as exc:
        raise UserError(f"--port {port}: cannot listen on {host}:{port} ({exc.strerror}); "
                        "choose another --port") from None
    server.daemon_threads = True
    shown = f"[{host}]" if ":" in host else host
    return server, f"http://{shown}:{server.server_address[1]}/" + (f"?token={token}" if token else "")


def serve(root: Path, host: str = "127.0.0.1", port: int = 7860, token: str | None = None,
          ready: Any = None) -> None:
    """Serve until interrupted; `ready(url)` is called once it listens."""
    server, url = build(root, host, port, token)
    if ready is not None:
        ready(url)
    try:
        server.serve_forever()
    finally:
        server.server_close()

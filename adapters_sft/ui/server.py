"""The UI's HTTP server: Python's own ThreadingHTTPServer, a JSON API (api.py), and one static
page (static/). Each request runs in its own thread, so a chat answer or a slow listing never
blocks the page; long operations are CLI subprocesses (jobs.py).

Safe by default, as Jupyter is: it binds to 127.0.0.1 and makes an access token at start,
printed in the URL it shows (`--no-token` opts out on loopback, with a warning; any other
address needs one). Every request but the page's own files must carry it (header X-Token; the
page takes it from its URL, ?token=...; pictures carry it in their query): without it another
local user or process could start training or read every run. The check reads the path the
router reads (request.py: every target form, percent-encoded or not), so it cannot be stepped
around. Requests naming a host other than the address served are refused (a web page elsewhere
cannot reach the API through DNS rebinding); every POST must be JSON (a cross-site form cannot
send one), at most 1 MiB, read with a deadline; every failure gets a one-line JSON answer.
"""
from __future__ import annotations

import json
import mimetypes
import secrets
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..errors import UserError
from . import api, request
from .chat import Chats
from .jobs import Jobs
from .request import Refused

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
        timeout = 60  # seconds a connection may stall (a body that never comes) before it is dropped
        target: request.Target

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

        def _check(self) -> request.Target:
            """The request's target, once it is known to be allowed; else Refused."""
            found = request.target(self.path)
            if app.hosts is not None:
                for named in (request.host_of(self.headers.get("Host") or ""), found.host):
                    if named is not None and named not in app.hosts:
                        raise Refused(HTTPStatus.FORBIDDEN, f"host '{named[:80]}' is not served here")
            public = found.path in ("/", "/index.html") or found.path.startswith("/static/")
            if app.token and not public:
                # the header from the page's requests; the query for pictures the browser fetches itself
                given = self.headers.get("X-Token") or found.query.get("token", "")
                if not request.token_matches(given, app.token):
                    raise Refused(HTTPStatus.UNAUTHORIZED, "access token missing or wrong: open the "
                                  "URL the server printed (it ends in ?token=...)")
            return found

        def _guard(self, work: Any) -> None:
            """Run a route; whatever goes wrong is answered in one JSON line, never silence."""
            try:
                self.target = self._check()
                work()
            except Refused as exc:
                self._json({"error": str(exc)}, exc.status)
            except UserError as exc:  # the CLI's own one-line message
                self._json({"error": str(exc)}, HTTPStatus.BAD_REQUEST)
            except (KeyError, ValueError, TypeError) as exc:
                self._json({"error": f"bad request: {exc}"}, HTTPStatus.BAD_REQUEST)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client went away
            except Exception as exc:  # a bug of ours: still one answer, and the server goes on
                self._json({"error": f"internal error: {type(exc).__name__}: {exc}"},
                           HTTPStatus.INTERNAL_SERVER_ERROR)

        # --- routes ---------------------------------------------------------------------------
        def do_GET(self) -> None:
            self._guard(self._get)

        def do_POST(self) -> None:
            self._guard(self._post)

        def _get(self) -> None:
            path, query = self.target.path, self.target.query
            if path in ("/", "/index.html"):
                return self._static("index.html")
            if path.startswith("/static/"):
                return self._static(path[len("/static/"):])
            if path == "/api/recipes":
                return self._json(api.recipes(app.root))
            if path == "/api/recipe":
                return self._json(api.recipe(app.root, request.text(query, "name")))
            if path == "/api/runs":
                return self._json(api.runs(app.root))
            if path == "/api/run":
                return self._json(api.run(app.root, request.text(query, "path")))
            if path == "/api/run-file":
                file = api.run_file(app.root, request.text(query, "path"), request.text(query, "name"))
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
            path, body = self.target.path, request.body(self.headers, self.rfile)
            if path == "/api/validate":
                return self._json(api.validate(app.root, request.text(body, "recipe"),
                                               request.texts(body, "overrides")))
            if path.startswith("/api/do/"):
                verb = path[len("/api/do/"):]
                if verb == "train":
                    checked = api.validate(app.root, request.text(body, "recipe"), request.texts(body, "overrides"))
                    if not checked["ok"]:
                        return self._json(checked, HTTPStatus.BAD_REQUEST)
                job = app.jobs.start(api.command(app.root, verb, body))
                return self._json(job.describe())
            if path == "/api/stop":
                number = request.number(body, "id")
                job = app.jobs.get(number)
                if job is None:
                    raise UserError(f"no job {number}")
                job.stop()
                return self._json(job.describe())
            if path == "/api/chat":
                return self._chat(body)
            self._json({"error": f"no such operation: {path}"}, HTTPStatus.NOT_FOUND)

        def _chat(self, body: dict[str, Any]) -> None:
            """The answer streams as it is generated (chunked text)."""
            run = api.inside(app.root, request.text(body, "run"))
            message, reset = request.text(body, "message"), bool(body.get("reset"))
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
                app.chats.reply(run, message, write, reset)
            except UserError as exc:
                write(f"\n[error] {exc}")
            self.wfile.write(b"0\r\n\r\n")

    return Handler


def build(root: Path, host: str = "127.0.0.1", port: int = 7860, token: str | None = None,
          require_token: bool = True) -> tuple[ThreadingHTTPServer, str]:
    """(server listening for the UI of the runs and recipes in `root`, its URL, carrying the
    token). Without `token`, one is made, unless `require_token` is off (loopback only)."""
    if not 0 <= port <= 65535:
        raise UserError(f"--port {port}: must be 0 (any free port) to 65535")
    if host not in LOOPBACK and not token:
        raise UserError(f"--host {host}: other machines could reach the UI, which starts "
                        "training and reads runs; add --token SECRET (every request must carry "
                        "it), or keep --host 127.0.0.1")
    if token is None and require_token:
        token = secrets.token_urlsafe(24)
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
          ready: Any = None, require_token: bool = True) -> None:
    """Serve until interrupted; `ready(url)` is called once it listens."""
    server, url = build(root, host, port, token, require_token)
    if ready is not None:
        ready(url)
    try:
        server.serve_forever()
    finally:
        server.server_close()

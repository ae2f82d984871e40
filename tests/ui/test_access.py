"""The UI's access check as an adversary meets it: raw HTTP/1.1 over a socket (no client library
to normalise anything), every route, every target form (origin, absolute, percent-encoded, with
dot segments), with and without the token; hostile bodies and headers each get a 4xx with a
one-line JSON error; paths a request names stay inside the served folder; the token is on by
default on loopback too."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from urllib.parse import urlsplit

import pytest

from tests.ui.conftest import running

GETS = ["/api/recipes", "/api/recipe?name=smollm2-135m/lora", "/api/runs", "/api/run?path=runs/x",
        "/api/run-file?path=runs/x&name=loss.png", "/api/jobs", "/api/nothing"]
POSTS = ["/api/validate", "/api/do/train", "/api/do/merge", "/api/stop", "/api/chat", "/api/nothing"]
BODY = {"recipe": "no-such-recipe.yaml", "run": "runs/x", "id": 999, "message": "hi"}


def raw(port: int, head: bytes, body: bytes = b"", timeout: float = 30) -> tuple[int, bytes]:
    """(status, body) of one raw request on a fresh connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        header, _, rest = data.partition(b"\r\n\r\n")
        status = int(header.split(b" ", 2)[1])
        length = next((int(line.split(b":")[1]) for line in header.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), None)
        while length is not None and len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return status, rest


def request(port: int, method: str, target: str, token: str | None = None, body: bytes = b"",
            headers: dict[str, str] | None = None, host: str | None = None) -> tuple[int, bytes]:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host or f'127.0.0.1:{port}'}", "Connection: close"]
    if token:
        lines.append(f"X-Token: {token}")
    if method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return raw(port, ("\r\n".join(lines) + "\r\n\r\n").encode(), body)


def forms(port: int, route: str) -> dict[str, str]:
    """The same route spelled every way HTTP allows (and the spellings a router might resolve)."""
    path, _, query = route.partition("?")
    q = f"?{query}" if query else ""
    encoded = path.replace("/api/", "/%61pi/", 1)  # 'a' percent-encoded
    return {"origin": route, "absolute": f"http://127.0.0.1:{port}{route}",
            "absolute-localhost": f"http://localhost:{port}{route}",
            "percent-encoded": encoded + q, "absolute-encoded": f"http://127.0.0.1:{port}{encoded}{q}",
            "dot-segments": "/static/.." + route, "dot-inside": path.replace("/api/", "/api/x/../", 1) + q,
            "double-slash": "/" + route,  # Python's server folds leading slashes: one path for both
            "inner-double-slash": path.replace("/api/", "/api//", 1) + q}


def json_error(body: bytes) -> str:
    data = json.loads(body)  # {"error"}; a refused train also says which key ({"ok", "key"})
    assert set(data) in ({"error"}, {"ok", "error", "key"}) and "\n" not in data["error"], data
    return data["error"]


@pytest.fixture
def guarded(tmp_path):
    root = tmp_path / "work"
    root.mkdir()
    with running(root) as client:  # the default: a token made at start
        client.port = urlsplit(client.url).port
        yield client


def test_every_route_in_every_form_needs_the_token(guarded):
    port, token = guarded.port, guarded.token
    assert token and len(token) >= 24  # made at start, even on loopback
    for method, routes in (("GET", GETS), ("POST", POSTS)):
        body = json.dumps(BODY).encode() if method == "POST" else b""
        for route in routes:
            for form, target in forms(port, route).items():
                status, answer = request(port, method, target, body=body)
                assert status in (400, 401), (method, form, target, status, answer[:200])
                json_error(answer)
                wrong = request(port, method, target, token=token[:-1] + "x", body=body)
                assert wrong[0] in (400, 401), (method, form, target, wrong)
                if form in ("dot-segments", "dot-inside", "inner-double-slash"):
                    assert status == 400  # never resolved to a route
                    continue
                status, answer = request(port, method, target, token=token, body=body)
                assert status not in (401, 403), (method, form, target, status, answer[:200])
    # the page itself holds no data and loads without the token; it then sends it
    assert request(port, "GET", "/")[0] == 200
    assert request(port, "GET", f"http://127.0.0.1:{port}/static/app.js")[0] == 200
    # the token in the query string is accepted where the browser fetches pictures itself
    assert request(port, "GET", f"/api/jobs?token={token}")[0] == 200


def test_another_host_is_refused_in_the_header_and_in_an_absolute_target(guarded):
    port, token = guarded.port, guarded.token
    status, body = request(port, "GET", "/api/jobs", token=token, host="evil.example")
    assert status == 403 and "evil.example" in json_error(body)
    status, body = request(port, "GET", "http://evil.example/api/jobs", token=token)
    assert status == 403 and "evil.example" in json_error(body)
    assert request(port, "GET", "ftp://127.0.0.1/api/jobs", token=token)[0] == 400


def test_hostile_headers_and_bodies_each_get_one_json_line(guarded):
    port, token = guarded.port, guarded.token
    # a non-ASCII token header
    status, body = raw(port, b"GET /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Token: \xe9\xff\xfe\r\n"
                             b"Connection: close\r\n\r\n")
    assert status == 401 and json_error(body)
    # JSON nested 100,000 levels deep
    status, body = request(port, "POST", "/api/validate", token, b"[" * 100_000 + b"]" * 100_000)
    assert status == 400 and "nests too deeply" in json_error(body)
    # a terabyte announced, two bytes sent: refused before anything is read
    head = (f"POST /api/validate HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Token: {token}\r\nConnection: close\r\n"
            "Content-Type: application/json\r\nContent-Length: 1099511627776\r\n\r\n").encode()
    status, body = raw(port, head, b"{}", timeout=10)
    assert status == 413 and json_error(body)
    head = head.replace(b"1099511627776", b"-5")
    assert raw(port, head, b"{}")[0] == 400
    # fields of the wrong type
    for sent in ({"recipe": "smollm2-135m/lora", "overrides": 5}, {"recipe": 5},
                 {"recipe": "smollm2-135m/lora", "overrides": [1, 2]}):
        status, body = request(port, "POST", "/api/validate", token, json.dumps(sent).encode())
        assert status == 400 and json_error(body), sent
    status, body = request(port, "POST", "/api/stop", token, b'{"id": [1]}')
    assert status == 400 and "'id'" in json_error(body)
    status, body = request(port, "POST", "/api/chat", token, b'{"run": 5, "message": "hi"}')
    assert status == 400 and json_error(body)
    # percent-encoding that is not UTF-8
    assert request(port, "GET", "/api/%ff", token)[0] == 400
    # the server is still up after all of it
    assert request(port, "GET", "/api/jobs", token)[0] == 200


@pytest.mark.parametrize("override", ["output_dir=../elsewhere", "output_dir=/tmp/elsewhere",
                                      "data.train=../../etc/passwd", "init_from=/root/run",
                                      "model=../models/x"])
def test_a_path_outside_the_served_folder_starts_nothing(override, guarded):
    for route in ("/api/do/train", "/api/do/check", "/api/do/plan"):
        sent = json.dumps({"recipe": "smollm2-135m/lora", "overrides": [override]}).encode()
        status, body = request(guarded.port, "POST", route, guarded.token, sent)
        assert status == 400 and "outside the folder the UI serves" in json_error(body), route
    checked = guarded.post("/api/validate", {"recipe": "smollm2-135m/lora", "overrides": [override]})
    assert not checked["ok"] and checked["key"] == override.split("=")[0]
    assert guarded.get("/api/jobs") == []
    # inside it, or not a path at all, passes the confinement
    ok = guarded.post("/api/validate", {"recipe": "smollm2-135m/lora",
                                        "overrides": ["output_dir=runs/mine", "data.train=builtin:dates/train"]})
    assert ok["ok"], ok


def test_no_token_is_a_choice_said_in_one_warning_and_ports_are_bounded(tmp_path, capsys):
    root = tmp_path / "work"
    root.mkdir()
    with running(root, require_token=False) as open_ui:
        assert open_ui.token is None and "token=" not in open_ui.url
        assert open_ui.get("/api/jobs") == []
    done = subprocess.run([sys.executable, "-m", "adapters_sft", "ui", str(root), "--port", "70000"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "--port" in done.stderr
    done = subprocess.run([sys.executable, "-m", "adapters_sft", "ui", str(root), "--no-token",
                           "--token", "x"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "give one of them" in done.stderr

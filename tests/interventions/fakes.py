"""A small local HTTP server standing in for the webhook and SMS providers we do not own (Slack, Discord, Twilio).

It records every request (method, path, headers, body, when it arrived and when it was answered) and answers a
scripted status: `fail_first=2` answers `fail_status` twice and then `status`; `fail_always=True` never
succeeds; `delay` holds every answer, so concurrent senders show up as overlapping requests.

    with FakeHTTPServer(fail_first=2) as server:
        post(server.url + "/hook")
        assert [r.status for r in server.requests] == [500, 500, 200]
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

__all__ = ["FakeHTTPServer", "RecordedRequest", "closed_port_url"]


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    received_at: float  # time.monotonic()
    answered_at: float = 0.0
    status: int = 0

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {name: values[-1] for name, values in parse_qs(self.body.decode()).items()}


@dataclass
class FakeHTTPServer:
    status: int = 200
    fail_first: int = 0
    fail_status: int = 500
    fail_always: bool = False
    delay: float = 0.0
    location: str = ""  # sent as the Location header (with a 3xx status: a redirect)
    requests: list[RecordedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start the server first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHTTPServer:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self  # type: ignore[attr-defined]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _answer(self, request: RecordedRequest) -> int:
        """Record the request and pick its status; requests are numbered in arrival order."""
        with self._lock:
            self.requests.append(request)
            failing = self.fail_always or len(self.requests) <= self.fail_first
        return self.fail_status if failing else self.status


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        request = RecordedRequest(method=self.command, path=self.path, received_at=time.monotonic(),
                                  headers={name.lower(): value for name, value in self.headers.items()},
                                  body=self.rfile.read(length) if length else b"")
        fake: FakeHTTPServer = self.server.fake  # type: ignore[attr-defined]
        status = fake._answer(request)
        time.sleep(fake.delay)
        request.status, request.answered_at = status, time.monotonic()
        body = json.dumps({"ok": status < 400}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if fake.location:
            self.send_header("Location", fake.location)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean


def closed_port_url() -> str:
    """A URL where nothing listens (the port was free a moment ago), for "the provider is down"."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"

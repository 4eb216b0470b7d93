"""A local package registry for tests: a PEP 503 "simple" index over the wheels of one directory, on 127.0.0.1.

Jailed commands reach it only through YokeFlow's egress proxy, with its name pinned (SANDBOX_EGRESS_PINS), the way
an operator points the `registries` network mode at an internal mirror.
"""

from __future__ import annotations

import base64
import hashlib
import html
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REGISTRY_NAME = "registry.yokeflow.test"


def wheel_build(directory: Path, name: str = "tinyrecover", version: str = "1.0", value: int = 42) -> Path:
    """A minimal pure-Python wheel of package `name` (a zip with a dist-info) whose module has VALUE = value."""
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VALUE = {value}\n".encode(),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [f"{path},sha256={_digest(data)},{len(data)}" for path, data in files.items()]
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for member, data in files.items():
            wheel.writestr(member, data)
    return path


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


@dataclass
class Registry:
    port: int
    requests: list[str]

    @property
    def index_url(self) -> str:
        return f"http://{REGISTRY_NAME}:{self.port}/simple/"

    @property
    def pin(self) -> str:
        return f"{REGISTRY_NAME}=127.0.0.1:{self.port}"


@contextmanager
def registry_serve(directory: Path) -> Iterator[Registry]:
    """Serve the wheels in `directory`; yields the registry (its port, and the paths requested so far)."""
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            parts = [p for p in self.path.split("?")[0].split("/") if p]
            if len(parts) == 2 and parts[0] == "simple":
                wheels = sorted(directory.glob(f"{parts[1].replace('-', '_')}-*.whl"))
                links = "".join(f'<a href="/files/{html.escape(w.name)}">{html.escape(w.name)}</a>\n'
                                for w in wheels)
                self._send(200, f"<html><body>\n{links}</body></html>".encode(), "text/html") if wheels \
                    else self._send(404, b"not found", "text/plain")
            elif len(parts) == 2 and parts[0] == "files" and (directory / parts[1]).is_file():
                self._send(200, (directory / parts[1]).read_bytes(), "application/octet-stream")
            else:
                self._send(404, b"not found", "text/plain")

        def _send(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Registry(server.server_address[1], requests)
    finally:
        server.shutdown()
        server.server_close()

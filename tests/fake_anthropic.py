"""A local HTTP server that speaks enough of the Anthropic Messages API for the real `anthropic` SDK.

Tests point `anthropic.Anthropic(base_url=fake.base_url, ...)` at it and script the replies, so the SDK's own
request building, response parsing, retry loop and timeouts are exercised for real; no SDK class is mocked.

    with FakeAnthropic() as fake:
        fake.tool_use("read_file", {"path": "a.txt"}, thinking="I should look first.")
        fake.text("Done.")
        client = anthropic.Anthropic(api_key="test-key", base_url=fake.base_url, max_retries=0)
        ...
        assert len(fake.requests) == 2

Wire behaviour mirrored from the real API (and relied on by the SDK, anthropic 2.x):

* `POST /v1/messages` (optionally `?beta=true`) answers a Message JSON, or Server-Sent Events when the request
  body has `"stream": true` (`client.messages.stream(...)` / `create(stream=True)`).
* Errors use the API's envelope `{"type": "error", "error": {"type": ..., "message": ...}}`. The SDK retries
  408, 409, 429 and every status >= 500 (unless an `x-should-retry` header says otherwise), and honours
  `retry-after-ms` first, then `retry-after` (seconds, or an HTTP date); a value <= 0 or missing falls back to
  its exponential backoff (0.5 s, 1 s, 2 s ... capped at 8 s, minus up to 25 % jitter).
* Every response carries a `request-id` header (the SDK exposes it as `._request_id`).
* Before answering, requests are checked like the real API does for the mistakes an agent loop can make
  (set `validate = False` to switch off): a thinking block sent back must keep a non-empty signature and, when
  the signature was issued by this fake, its thinking text unchanged; every `tool_use` must be answered by a
  `tool_result` in the next message, and every `tool_result` must answer a `tool_use` of the previous message.
  Such a request gets a 400 and does not consume a scripted reply.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import math
import socket
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

__all__ = ["DEFAULT_USAGE", "ERROR_TYPES", "FakeAnthropic"]

DEFAULT_USAGE: dict[str, int] = {
    "input_tokens": 100,
    "output_tokens": 50,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
}

ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

NO_REPLY_LEFT = "fake anthropic: no scripted reply left"
MESSAGES_PATH = "/v1/messages"
_DISCONNECTS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeAnthropic

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up (timeouts, retries) or stop() closing sockets is expected; anything else is a bug.
        exc = sys.exc_info()[1]
        if isinstance(exc, _DISCONNECTS) or (isinstance(exc, OSError) and self.fake._stopping.is_set()):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    # -- connection bookkeeping, so stop() can hang up idle keep-alive connections --------------------------

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        except _DISCONNECTS:
            pass
        finally:
            self.server.fake._track(self.connection, add=False)

    def handle(self) -> None:
        try:
            super().handle()
        except _DISCONNECTS:
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- routing ----------------------------------------------------------------------------------------------

    def do_POST(self) -> None:
        raw = self._read_body()
        if urlsplit(self.path).path != MESSAGES_PATH:
            self._send_error(404, "not_found_error", f"fake anthropic: no route for POST {self.path}")
            return
        self.server.fake._serve(self, raw)

    def _not_found(self) -> None:
        self._read_body()
        self._send_error(404, "not_found_error", f"fake anthropic: no route for {self.command} {self.path}")

    do_GET = do_PUT = do_PATCH = do_DELETE = do_HEAD = _not_found

    # -- I/O helpers ------------------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send_json(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.send_header("request-id", self.server.fake._next_id("req_fake_"))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            self.wfile.flush()
        except _DISCONNECTS:
            self.close_connection = True

    def _send_error(self, status: int, type_: str, message: str, headers: dict[str, str] | None = None) -> None:
        self._send_json(status, {"type": "error", "error": {"type": type_, "message": message}}, headers)

    def _send_events(self, events: Iterator[tuple[str, dict]]) -> None:
        try:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream; charset=utf-8")
            self.send_header("cache-control", "no-cache")
            self.send_header("connection", "close")
            self.send_header("request-id", self.server.fake._next_id("req_fake_"))
            self.end_headers()
            for name, data in events:
                self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()
        except _DISCONNECTS:
            pass
        self.close_connection = True


class FakeAnthropic:
    """Scriptable stand-in for api.anthropic.com; replies are consumed first in, first out, one per request."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self.validate: bool = True
        self._queue: deque[dict[str, Any]] = deque()
        self._handler_fn: Callable[[dict], dict | None] | None = None
        self._lock = threading.Lock()
        self._counters: dict[str, itertools.count[int]] = {}
        self._signatures: dict[str, str] = {}  # signature issued by this fake -> the thinking text it signs
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------------------------

    def start(self) -> FakeAnthropic:
        if self._server is not None:
            raise RuntimeError("FakeAnthropic is already started")
        self._stopping.clear()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-anthropic", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # wakes delayed replies, which then hang up without answering
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=1)
            self._thread = None

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeAnthropic is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- scripting --------------------------------------------------------------------------------------------

    def reply(
        self,
        content: list[dict],
        *,
        stop_reason: str | None = None,
        usage: dict | None = None,
        delay: float = 0.0,
        model: str | None = None,
    ) -> None:
        """Queue one successful Message. Missing tool_use ids and thinking signatures are filled in."""
        spec = self._message_spec({"content": content, "stop_reason": stop_reason, "usage": usage, "model": model})
        spec["delay"] = delay
        with self._lock:
            self._queue.append(spec)

    def text(self, text: str, **kw: Any) -> None:
        """Queue a reply of one text block (stop_reason end_turn unless given)."""
        self.reply([{"type": "text", "text": text}], **kw)

    def tool_use(
        self,
        name: str,
        input: dict,
        *,
        thinking: str | None = None,
        text: str | None = None,
        id: str | None = None,
        **kw: Any,
    ) -> None:
        """Queue a reply `[thinking?] [text?] tool_use` (stop_reason tool_use unless given)."""
        content: list[dict] = []
        if thinking is not None:
            content.append({"type": "thinking", "thinking": thinking})
        if text is not None:
            content.append({"type": "text", "text": text})
        block: dict[str, Any] = {"type": "tool_use", "name": name, "input": input}
        if id is not None:
            block["id"] = id
        content.append(block)
        self.reply(content, **kw)

    def error(
        self,
        status: int,
        *,
        type: str | None = None,
        message: str = "scripted error",
        retry_after: float | None = None,
        delay: float = 0.0,
        should_retry: bool | None = None,
    ) -> None:
        """Queue one error response in the API's envelope.

        `retry_after` (seconds, fractions allowed) is sent as `retry-after-ms` (which the SDK reads first, exactly)
        and as a whole-seconds `retry-after`. A value <= 0 makes the SDK fall back to its backoff (>= 0.375 s).
        `should_retry` sets `x-should-retry`, which overrides the SDK's status-code policy.
        """
        spec = self._error_spec(
            {
                "status": status,
                "type": type,
                "message": message,
                "retry_after": retry_after,
                "should_retry": should_retry,
            }
        )
        spec["delay"] = delay
        with self._lock:
            self._queue.append(spec)

    def handler(self, fn: Callable[[dict], dict | None]) -> None:
        """Answer requests that find the queue empty with `fn(request_body)`.

        `fn` returns a reply spec `{"content": [...], "stop_reason"?, "usage"?, "model"?, "delay"?}`, an error spec
        `{"status": 529, "type"?, "message"?, "retry_after"?, "should_retry"?, "delay"?}`, or None to fall through
        to the "no scripted reply left" 400. Pass None to remove the handler.
        """
        self._handler_fn = fn

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def last_messages(self) -> list[dict]:
        with self._lock:
            if not self.requests:
                raise AssertionError("fake anthropic: no request received yet")
            return self.requests[-1].get("messages", [])

    # -- spec building ----------------------------------------------------------------------------------------

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            counter = self._counters.setdefault(prefix, itertools.count(1))
            return f"{prefix}{next(counter)}"

    def _message_spec(self, raw: dict) -> dict[str, Any]:
        content = raw.get("content")
        if not isinstance(content, list) or not all(isinstance(b, dict) and "type" in b for b in content):
            raise TypeError(f"reply content must be a list of blocks with a 'type', got {content!r}")
        content = copy.deepcopy(content)
        for block in content:
            if block["type"] == "tool_use":
                block.setdefault("id", self._next_id("toolu_fake_"))
                block.setdefault("input", {})
            elif block["type"] == "thinking":
                block.setdefault("thinking", "")
                if not block.get("signature"):
                    block["signature"] = self._next_id("fake-signature-")
                with self._lock:
                    self._signatures[block["signature"]] = block["thinking"]
        stop_reason = raw.get("stop_reason")
        if stop_reason is None:
            stop_reason = "tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn"
        return {
            "kind": "message",
            "content": content,
            "stop_reason": stop_reason,
            "usage": {**DEFAULT_USAGE, **(raw.get("usage") or {})},
            "model": raw.get("model"),
            "delay": float(raw.get("delay") or 0.0),
        }

    def _error_spec(self, raw: dict) -> dict[str, Any]:
        status = int(raw["status"])
        headers: dict[str, str] = {}
        retry_after = raw.get("retry_after")
        if retry_after is not None:
            headers["retry-after-ms"] = repr(float(retry_after) * 1000)
            headers["retry-after"] = str(max(0, math.ceil(retry_after)))
        should_retry = raw.get("should_retry")
        if should_retry is not None:
            headers["x-should-retry"] = "true" if should_retry else "false"
        error_type = (
            raw.get("type") or ERROR_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")
        )
        return {
            "kind": "error",
            "status": status,
            "type": error_type,
            "message": raw.get("message") or "scripted error",
            "headers": headers,
            "delay": float(raw.get("delay") or 0.0),
        }

    # -- serving (runs in the request's thread) ---------------------------------------------------------------

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _serve(self, http: _Handler, raw: bytes) -> None:
        try:
            body = json.loads(raw)
        except ValueError as exc:
            http._send_error(400, "invalid_request_error", f"fake anthropic: request body is not JSON: {exc}")
            return
        if not isinstance(body, dict):
            http._send_error(400, "invalid_request_error", "fake anthropic: request body must be a JSON object")
            return
        with self._lock:
            self.requests.append(body)
            self.headers.append({name.lower(): value for name, value in http.headers.items()})

        problem = self._check(body) if self.validate else None
        if problem is not None:
            http._send_error(400, "invalid_request_error", problem)
            return

        spec = self._take(body)
        if spec is None:
            http._send_error(400, "invalid_request_error", NO_REPLY_LEFT)
            return
        if spec["delay"] > 0 and self._stopping.wait(spec["delay"]):
            http.close_connection = True  # stopped while sleeping: hang up without answering
            return
        if self._stopping.is_set():
            http.close_connection = True
            return

        if spec["kind"] == "error":
            http._send_error(spec["status"], spec["type"], spec["message"], spec["headers"])
            return
        message = {
            "id": self._next_id("msg_fake_"),
            "type": "message",
            "role": "assistant",
            "model": spec["model"] or body.get("model") or "claude-fake",
            "content": spec["content"],
            "stop_reason": spec["stop_reason"],
            "stop_sequence": None,
            "usage": spec["usage"],
        }
        if body.get("stream"):
            http._send_events(_stream_events(message))
        else:
            http._send_json(200, message)

    def _take(self, body: dict) -> dict[str, Any] | None:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        fn = self._handler_fn
        if fn is None:
            return None
        try:
            raw = fn(body)
            if raw is None:
                return None
            return self._error_spec(raw) if "status" in raw else self._message_spec(raw)
        except Exception as exc:  # a broken handler must fail the test, not be retried by the SDK
            return {
                "kind": "error",
                "status": 400,
                "type": "invalid_request_error",
                "message": f"fake anthropic: handler raised {exc!r}",
                "headers": {"x-should-retry": "false"},
                "delay": 0.0,
            }

    def _check(self, body: dict) -> str | None:
        """Return the real API's complaint about the conversation, if it would have one."""
        messages = body.get("messages")
        if not isinstance(messages, list):
            return "messages: Field required"
        previous_tool_uses: set[str] = set()
        for i, message in enumerate(messages):
            content = message.get("content") if isinstance(message, dict) else None
            blocks = [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []
            role = message.get("role") if isinstance(message, dict) else None
            results = {b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"}
            if role == "user":
                unexpected = sorted(str(r) for r in results - previous_tool_uses)
                if unexpected:
                    return (
                        f"messages.{i}.content: unexpected `tool_use_id` found in `tool_result` blocks: "
                        f"{', '.join(unexpected)}. Each `tool_result` block must have a corresponding `tool_use` "
                        "block in the previous message."
                    )
            missing = sorted(previous_tool_uses - results)
            if missing:
                return (
                    f"messages.{i - 1}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                    f"{', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` block "
                    "in the next message."
                )
            previous_tool_uses = set()
            if role == "assistant":
                for j, block in enumerate(blocks):
                    if block.get("type") == "tool_use":
                        previous_tool_uses.add(str(block.get("id")))
                    elif block.get("type") == "thinking":
                        signature = block.get("signature")
                        if not isinstance(signature, str) or not signature:
                            return f"messages.{i}.content.{j}.thinking.signature: Field required"
                        with self._lock:
                            signed = self._signatures.get(signature)
                        if signed is not None and signed != block.get("thinking"):
                            return f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
        return None


def _stream_events(message: dict) -> Iterator[tuple[str, dict]]:
    """The Server-Sent Events the API emits for `message` when asked to stream."""
    usage = message["usage"]
    start_usage = {**usage, "output_tokens": min(1, usage.get("output_tokens", 0))}
    yield (
        "message_start",
        {"type": "message_start", "message": {**message, "content": [], "stop_reason": None, "usage": start_usage}},
    )
    yield "ping", {"type": "ping"}
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        deltas: list[dict] = []
        if kind == "text":
            start = {**block, "text": ""}
            deltas = [{"type": "text_delta", "text": chunk} for chunk in _chunks(block.get("text", ""))]
        elif kind == "thinking":
            start = {**block, "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": chunk} for chunk in _chunks(block["thinking"])]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        elif kind == "tool_use":
            start = {**block, "input": {}}
            deltas = [
                {"type": "input_json_delta", "partial_json": part} for part in _chunks(json.dumps(block["input"]))
            ]
        else:
            start = block
        yield "content_block_start", {"type": "content_block_start", "index": index, "content_block": start}
        for delta in deltas:
            yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]},
            "usage": usage,
        },
    )
    yield "message_stop", {"type": "message_stop"}


def _chunks(text: str, size: int = 24) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]

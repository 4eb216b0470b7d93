"""The jail's only way out: an allow-listing HTTP(S) proxy that YokeFlow runs, per network mode.

A project's network mode (`Project.network`):
- `none` (default): the jail has no network at all.
- `registries`: HTTP and HTTPS (CONNECT) to the host names in `SANDBOX_REGISTRIES` only (`*.example.org` allows
  sub-domains), so `pip install` and `npm install` work.
- `open` (staff only): any host name.

In every mode: raw IP addresses are refused (a name is needed, so the allow-list means something), the name is
resolved here and refused when any address is not globally routable (loopback, link-local with the cloud
metadata address, private, reserved), and the proxy connects to the address it checked (no second lookup, so no
DNS rebinding). Only the ports in `SANDBOX_EGRESS_PORTS` are reachable. `SANDBOX_EGRESS_PINS` (`name=host:port`)
pins a name to an address the operator chose — an internal mirror, or the tests' local registry — and is the one
way to reach a non-public address.

The proxy listens on a Unix socket; the jail gets that socket bound in and a relay (`egress_relay.py`) that
forwards the jail's 127.0.0.1:3128 to it, with HTTP(S)_PROXY pointing there.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import logging
import os
import shutil
import socket
import tempfile
import threading
from dataclasses import replace
from fnmatch import fnmatch
from pathlib import Path

from django.conf import settings

from apps.agents.egress_relay import pipe
from apps.agents.jail import JailSpec, unsafe_mode
from apps.core.errors import ValidationError
from apps.core.netguard import DestinationRefused, resolve_public

__all__ = ["NETWORK_MODES", "egress_check", "egress_env", "egress_for", "proxy_socket"]

log = logging.getLogger(__name__)

NETWORK_MODES = ("none", "registries", "open")
PROXY_PORT = 3128
SOCKET_IN_JAIL = "/run/yokeflow/egress.sock"
MAX_HEAD = 64 * 1024
CONNECT_TIMEOUT_S = 10.0


class EgressRefused(Exception):
    pass


# ----------------------------------------------------------------------------------------------- the policy


def _pins() -> dict[str, tuple[str, int]]:
    pins = {}
    for entry in settings.SANDBOX_EGRESS_PINS:
        name, _, target = entry.partition("=")
        host, _, port = target.rpartition(":")
        if name and host and port.isdigit():
            pins[name.strip().lower()] = (host.strip("[]"), int(port))
    return pins


def egress_check(mode: str, host: str, port: int) -> tuple[str, int]:
    """The (address, port) to connect to for `host:port` in network `mode`; raises EgressRefused with the reason."""
    host = host.strip().rstrip(".").lower().strip("[]")
    if mode not in ("registries", "open"):
        raise EgressRefused(f"network mode {mode!r} allows no connections")
    pinned = _pins().get(host)
    if mode == "registries" and not any(fnmatch(host, pattern.lower()) for pattern in settings.SANDBOX_REGISTRIES):
        raise EgressRefused(f"{host} is not on the registry allow-list (SANDBOX_REGISTRIES)")
    if pinned is not None:
        if port != pinned[1] and port not in settings.SANDBOX_EGRESS_PORTS:
            raise EgressRefused(f"port {port} is not allowed for {host}")
        return pinned[0], pinned[1]
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(host)
        raise EgressRefused(f"{host} is an IP address; only host names are allowed")
    if port not in settings.SANDBOX_EGRESS_PORTS:
        raise EgressRefused(f"port {port} is not allowed (SANDBOX_EGRESS_PORTS)")
    try:
        return resolve_public(host, port)[0], port
    except DestinationRefused as exc:
        raise EgressRefused(str(exc)) from None


# ----------------------------------------------------------------------------------------------- the proxy


def _read_head(client: socket.socket) -> bytes:
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = client.recv(4096)
        if not chunk:
            break
        head += chunk
        if len(head) > MAX_HEAD:
            raise EgressRefused("request head too large")
    return head


def _target(head: bytes) -> tuple[str, str, int, bytes]:
    """(method, host, port, the request head to send upstream) from a proxy request head."""
    line, _, rest = head.partition(b"\r\n")
    try:
        method, target, version = line.decode("latin-1").split(" ")
    except ValueError:
        raise EgressRefused("malformed request line") from None
    if method == "CONNECT":
        host, _, port = target.rpartition(":")
        if not port.isdigit():
            raise EgressRefused("CONNECT needs host:port")
        return method, host, int(port), b""
    if not target.startswith("http://"):
        raise EgressRefused("only http:// URLs and CONNECT are proxied")
    authority, slash, path = target[len("http://"):].partition("/")
    host, _, port = authority.rpartition(":") if ":" in authority.rsplit("]", 1)[-1] else (authority, "", "80")
    headers = [h for h in rest.split(b"\r\n") if h and not h.lower().startswith((b"proxy-", b"connection:"))]
    upstream = f"{method} {slash}{path or ''} {version}".encode("latin-1") + b"\r\n" + b"\r\n".join(
        [*headers, b"Connection: close"]) + b"\r\n\r\n"
    return method, host, int(port or 80), upstream


def _handle(client: socket.socket, mode: str) -> None:
    with client:
        try:
            head = _read_head(client)
            body_start = head.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in head else b""
            method, host, port, upstream_head = _target(head.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n")
            address, real_port = egress_check(mode, host, port)
        except EgressRefused as exc:
            log.info("egress refused (%s): %s", mode, exc)
            message = f"YokeFlow's egress proxy refused this: {exc}\n".encode()
            with contextlib.suppress(OSError):
                client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                               b"Content-Length: " + str(len(message)).encode() + b"\r\n\r\n" + message)
            return
        except OSError:
            return
        try:
            upstream = socket.create_connection((address, real_port), timeout=CONNECT_TIMEOUT_S)
        except OSError as exc:
            with contextlib.suppress(OSError):
                client.sendall(f"HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\n\r\n{exc}\n".encode())
            return
        with upstream:
            upstream.settimeout(None)
            if method == "CONNECT":
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                upstream.sendall(upstream_head)
            if body_start:
                upstream.sendall(body_start)
            thread = threading.Thread(target=pipe, args=(client, upstream), daemon=True)
            thread.start()
            pipe(upstream, client)
            thread.join(5)


class _Proxy:
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.directory = Path(tempfile.mkdtemp(prefix=f"yokeflow-egress-{mode}-"))
        self.directory.chmod(0o755)
        self.path = self.directory / "proxy.sock"
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(self.path))
        self.path.chmod(0o666)  # the jail's uid maps to ours, but keep it usable under any mapping
        self.listener.listen(128)
        atexit.register(shutil.rmtree, self.directory, True)
        threading.Thread(target=self._serve, name=f"egress-proxy-{mode}", daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=_handle, args=(client, self.mode), daemon=True).start()


_proxies: dict[tuple[int, str], _Proxy] = {}
_proxies_lock = threading.Lock()


def proxy_socket(mode: str) -> Path:
    """The Unix socket of this process's proxy for `mode`, started on first use."""
    key = (os.getpid(), mode)  # a forked worker child starts its own
    with _proxies_lock:
        if key not in _proxies:
            _proxies[key] = _Proxy(mode)
        return _proxies[key].path


# ----------------------------------------------------------------------------------------------- the jail side


def _check_mode(mode: str) -> None:
    if mode not in NETWORK_MODES:
        raise ValidationError(f"network mode must be one of {', '.join(NETWORK_MODES)}, not {mode!r}",
                              code="invalid_network_mode")


def egress_for(spec: JailSpec) -> JailSpec:
    """`spec` with its network mode wired in: for registries/open, the proxy socket bound and forwarded to."""
    _check_mode(spec.network)
    if spec.network == "none" or unsafe_mode():  # SANDBOX=policy: no jail, so nothing to wire (and no isolation)
        return spec
    extra = ("--ro-bind", str(proxy_socket(spec.network)), SOCKET_IN_JAIL)
    return replace(spec, extra_args=spec.extra_args + extra,
                   forwards=(*spec.forwards, f"import:{PROXY_PORT}={SOCKET_IN_JAIL}"))


def egress_env(spec: JailSpec) -> dict[str, str]:
    if spec.network == "none" or unsafe_mode():
        return {}
    url = f"http://127.0.0.1:{PROXY_PORT}"
    return {"HTTP_PROXY": url, "HTTPS_PROXY": url, "http_proxy": url, "https_proxy": url,
            "npm_config_proxy": url, "npm_config_https_proxy": url, "NO_PROXY": "", "no_proxy": ""}

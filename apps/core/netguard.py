"""Outbound connections to addresses someone else chose (a member's webhook URL, a jailed command's proxy request)
must not reach inside: loopback, private, link-local (the cloud metadata address), reserved or multicast
addresses are refused unless an operator allowed their network explicitly.

`resolve_public` resolves a name and checks every address it resolves to; `post_pinned` then connects to the
address that was checked (a second lookup could answer differently: DNS rebinding), sends the request with the
name in the Host header and in TLS (SNI and certificate checks), and never follows a redirect.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class DestinationRefused(Exception):
    """The destination is not one YokeFlow may connect to; the message says why (never with credentials)."""


class Unresolvable(DestinationRefused):
    """The name does not resolve (now): refused for a connection, not proof that the name points inside."""


@dataclass(frozen=True)
class Destination:
    scheme: str
    host: str
    port: int
    target: str  # path and query
    address: str  # the checked address to connect to


def networks(values: Iterable[str]) -> list[Network]:
    return [ipaddress.ip_network(value.strip(), strict=False) for value in values if value.strip()]


def resolve_public(host: str, port: int, *, allowed: Iterable[Network] = ()) -> list[str]:
    """The addresses `host` resolves to, if every one is public or inside an `allowed` network."""
    allowed = list(allowed)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise Unresolvable(f"{host} cannot be resolved ({exc.__class__.__name__})") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not ip.is_global and not any(ip in network for network in allowed):
            raise DestinationRefused(f"{host} resolves to {address}, which is not a public address")
    return addresses


def destination(url: str, *, allowed: Iterable[Network] = ()) -> Destination:
    """Check an http(s) URL: its scheme, its host, and every address the host resolves to."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise DestinationRefused("the URL is not valid") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DestinationRefused("the URL must be http:// or https:// with a host name")
    if parts.username or parts.password:
        raise DestinationRefused("the URL must not carry a user name or password")
    address = resolve_public(parts.hostname, port, allowed=allowed)[0]
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Destination(parts.scheme, parts.hostname, port, target, address)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # the name is checked, not the IP


def post_pinned(dest: Destination, *, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, str]:
    """POST to the checked address; returns (status, reason). Redirects are answers, not followed."""
    kind = _PinnedHTTPSConnection if dest.scheme == "https" else _PinnedHTTPConnection
    connection = kind(dest.host, dest.port, dest.address, timeout)
    try:
        connection.request("POST", dest.target, body=body, headers=headers)
        response = connection.getresponse()
        response.read(65536)  # drained, not kept: receivers echo request details in their answers
        return response.status, response.reason
    finally:
        connection.close()

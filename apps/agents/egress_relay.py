"""Runs inside the jail (standard library only): forwards TCP ports of the jail's loopback to and from Unix sockets.

    python3 -I egress_relay.py [import:PORT=SOCKET …] [export:SOCKET=PORT …] -- COMMAND [ARG …]

A jail has no network, only its own loopback, and each command has its own. `import:PORT=SOCKET` listens on
127.0.0.1:PORT inside and relays every connection to SOCKET (YokeFlow's egress proxy, or a port another jail of
the same worktree exports). `export:SOCKET=PORT` creates SOCKET once 127.0.0.1:PORT inside accepts connections (so
its existence means "ready") and relays every connection on it to that port: this is how the worktree's dev
service, in its own jail, is reached from the agent's commands. The listeners are up before COMMAND starts; the
relay exits with COMMAND's exit status.
"""

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time


def pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _relay(client: socket.socket, connect) -> None:
    try:
        upstream = connect()
    except OSError:
        client.close()
        return
    threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
    pipe(upstream, client)
    client.close()
    upstream.close()


def _serve(listener: socket.socket, connect) -> None:
    while True:
        client, _ = listener.accept()
        threading.Thread(target=_relay, args=(client, connect), daemon=True).start()


def _unix(path: str):
    def connect() -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        return sock
    return connect


def _tcp(port: int):
    return lambda: socket.create_connection(("127.0.0.1", port), timeout=10)


def _import(port: int, path: str) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    threading.Thread(target=_serve, args=(listener, _unix(path)), daemon=True).start()


def _export(path: str, port: int) -> None:
    while True:  # until the service inside accepts connections
        try:
            _tcp(port)().close()
            break
        except OSError:
            time.sleep(0.05)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    _serve(listener, _tcp(port))


def main(argv: list[str]) -> int:
    split = argv.index("--")
    for spec in argv[:split]:
        kind, _, pair = spec.partition(":")
        left, right = pair.split("=", 1)
        if kind == "import":
            _import(int(left), right)
        elif kind == "export":
            threading.Thread(target=_export, args=(left, int(right)), daemon=True).start()
    return subprocess.call(argv[split + 1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

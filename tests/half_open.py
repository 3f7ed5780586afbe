"""Connections that never finish a request, as a flood opens them: in this process, or as its own process
(`python -m tests.half_open HOST PORT SOURCE COUNT`: opens them from address SOURCE, prints `open N` once they are
sent, then on each line read from stdin how many are still open, until stdin closes)."""

from __future__ import annotations

import contextlib
import resource
import selectors
import socket
import sys
import time

UNFINISHED = b"GET / HTTP/1.1\r\nHost: flood\r\nX-Slow: "  # a request head that never ends


def raise_own_limit() -> int:
    """This process's open-files limit raised to its ceiling (a flood needs a descriptor a connection)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def open_unfinished(host: str, port: int, count: int, source: str = "127.0.0.1", head: bytes = UNFINISHED):
    """`count` connections from `source`, each having sent `head` (those the server let in)."""
    sockets = []
    for _ in range(count):
        connection = socket.socket()
        connection.setblocking(False)
        connection.bind((source, 0))
        with contextlib.suppress(BlockingIOError):
            connection.connect((host, port))
        sockets.append(connection)
    sent = []
    for connection in sockets:
        _wait_writable(connection)
        try:
            connection.send(head)
            sent.append(connection)
        except OSError:  # refused at once
            connection.close()
    return sent


def _wait_writable(connection: socket.socket) -> None:
    with selectors.DefaultSelector() as selector:
        selector.register(connection, selectors.EVENT_WRITE)
        selector.select(timeout=10)


def still_open(sockets: list[socket.socket], within: float = 0.0) -> list[socket.socket]:
    """The connections the server has not closed, after waiting up to `within` seconds for it to close them all."""
    open_ones = list(sockets)
    deadline = time.monotonic() + within
    with selectors.DefaultSelector() as selector:
        for connection in open_ones:
            selector.register(connection, selectors.EVENT_READ)
        while open_ones:
            for key, _ in selector.select(timeout=max(0.0, min(0.5, deadline - time.monotonic()))):
                if _closed(key.fileobj):  # type: ignore[arg-type]
                    selector.unregister(key.fileobj)
                    open_ones.remove(key.fileobj)  # type: ignore[arg-type]
            if time.monotonic() >= deadline:
                break
    return open_ones


def _closed(connection: socket.socket) -> bool:
    try:
        return connection.recv(4096) == b""
    except BlockingIOError:
        return False
    except OSError:  # reset
        return True


def main(host: str, port: str, source: str, count: str) -> None:
    raise_own_limit()
    sockets = open_unfinished(host, int(port), int(count), source)
    print(f"open {len(still_open(sockets))}", flush=True)
    for _ in sys.stdin:
        print(f"open {len(still_open(sockets))}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])

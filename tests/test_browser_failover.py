"""The Chat tab when a provider dies mid-answer and the route's next one continues it: the person reads one
answer, split by a small marker where the provider changed, the same after a reload; the next turn sends the
model the whole answer, without the marker. Also: a per-visitor limit is one sentence, and the message stays.

The real app runs in this process over two scripted upstreams; Debian's Chromium drives the page.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from playwright.sync_api import expect

from backend import Backend, load_settings
from backend.auth import load_users
from tests.conftest import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, log_in, require, stored_conversations
from tests.test_browser import (
    ANSWERS,
    BOT_GROUPS,
    MESSAGE_BOX,
    THOUGHT_TITLES,
    USER_MESSAGES,
    WAIT,
    open_chat,
    send,
    sent_messages,
    wait_for_footer,
    wait_until_idle,
)
from tests.upstream import Reply, ScriptedUpstream

pytestmark = pytest.mark.browser

MARKER = "↪ backup/b continued from here."


@pytest.fixture
def route_app(write_config, serve_app, request):
    """The app over a route `steady`: `main/a` first, `backup/b` next."""
    with ScriptedUpstream() as main, ScriptedUpstream() as backup:
        config = textwrap.dedent(
            f"""
            [app]
            embedded_model = false
            stream_interval_ms = 30
            [providers.main]
            kind = "openai"
            base_url = "{main.base_url}"
            models = ["a"]
            max_retries = 0
            idle_timeout = 1
            [providers.backup]
            kind = "openai"
            base_url = "{backup.base_url}"
            models = ["b"]
            [routes]
            steady = ["main/a", "backup/b"]
            [defaults]
            chat = "steady"
            """
        )
        backend = Backend(load_settings(write_config(config)))
        page = open_chat(request, serve_app(backend))
        yield page, main, backup


def test_answer_continued_after_a_drop_reads_as_one(route_app, tmp_path: Path):
    page, main, backup = route_app
    first_part = ["Here is the code:\n\n```python\n", "def add(a, b):\n", "    return"]
    main.enqueue(Reply.text(first_part, drop_after=4))  # the role chunk and the three pieces, then the drop
    backup.enqueue(Reply.text([" a + b\n```\n\n", "It adds two numbers."]))
    send(page, "Write an add function.")

    expect(page.locator(THOUGHT_TITLES).filter(has_text=MARKER)).to_have_count(1, timeout=WAIT)
    footer = wait_for_footer(page, "main/a → backup/b")
    wait_until_idle(page)
    expect(page.locator(BOT_GROUPS)).to_have_count(1)  # one reply bubble
    parts = page.locator(ANSWERS)
    expect(parts).to_have_count(2)
    # The code block cut by the failure still renders as code on both sides of the marker.
    expect(parts.nth(0).locator("pre code")).to_contain_text("def add(a, b):")
    expect(parts.nth(1).locator("pre code")).to_contain_text("a + b")
    expect(parts.nth(1)).to_contain_text("It adds two numbers.")
    marker = page.locator(THOUGHT_TITLES).filter(has_text=MARKER)
    expect(marker).to_contain_text("The connection to main/a dropped before the answer was complete.")
    page.screenshot(path=str(ARTIFACTS / "chat-failover-continued.png"))

    # Stored as one answer with the place of the handover.
    [stored] = stored_conversations(tmp_path / "data")
    reply = stored["messages"][1]
    assert reply["text"] == "".join(first_part) + " a + b\n```\n\nIt adds two numbers."
    handover_at = len("".join(first_part))
    assert [(h["provider"], h["model"], h["at"]) for h in reply["handovers"]] == [("backup", "b", handover_at)]
    assert reply["provider"] == "main" and reply["status"] == "complete"

    # The next turn gives the model the whole answer as one message, no marker in it.
    backup.enqueue(Reply.text(["Sure."]))
    main.enqueue(Reply.text(["Sure."]))
    send(page, "Thanks!")
    expect(page.locator(USER_MESSAGES)).to_have_count(2, timeout=WAIT)
    wait_until_idle(page)
    history = sent_messages(main.chat_requests()[-1])  # the route's first provider answers the next turn
    assert history[1] == {"role": "assistant", "content": reply["text"]}

    # A reload and reopening the chat shows the same marker and footer.
    page.reload()
    expect(page.locator(MESSAGE_BOX)).to_be_editable(timeout=WAIT)
    page.locator("#chat-list li.chat button.pick").first.click()
    expect(page.locator(THOUGHT_TITLES).filter(has_text=MARKER)).to_have_count(1, timeout=WAIT)
    expect(page.locator(THOUGHT_TITLES).nth(1)).to_have_text(footer)  # after the marker of the first reply


def test_visitor_limit_is_said_at_the_box_and_the_message_stays(write_config, serve_app, monkeypatch):
    """With logins, a user at their limit of replies at once is told so in one sentence at the message box; the
    message waits there and is sent once the running reply ends."""
    require(Path(CHROMIUM).exists(), "Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("TEAM", "alice:alice-secret")
    with ScriptedUpstream() as cloud:
        config = textwrap.dedent(
            f"""
            [app]
            embedded_model = false
            max_concurrent_per_visitor = 1
            [auth]
            users_env = "TEAM"
            [providers.cloud]
            kind = "openai"
            base_url = "{cloud.base_url}"
            models = ["chat"]
            """
        )
        settings = load_settings(write_config(config))
        url = serve_app(Backend(settings), users=load_users(None, "TEAM"))
        cloud.enqueue(Reply.text([f"w{i} " for i in range(60)], delay=0.05))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            first, second = (browser.new_context().new_page() for _ in range(2))
            for page in (first, second):  # two tabs of the same user
                log_in(page, url, "alice", "alice-secret")
            send(first, "A long story, please.")
            assert cloud.wait_for(lambda: len(cloud.chat_requests()) == 1, timeout=20)
            send(second, "Meanwhile, a question.")
            refusal = second.locator("#message .validation-error")
            expect(refusal).to_contain_text("You already have 1 reply running", timeout=WAIT)
            expect(second.locator(MESSAGE_BOX)).to_have_value("Meanwhile, a question.")
            expect(second.locator("#chatbot [data-testid='status-tracker']")).not_to_contain_text("Error")
            expect(second.locator(USER_MESSAGES)).to_have_count(0)
            second.screenshot(path=str(ARTIFACTS / "chat-visitor-limit.png"))
            expect(first.locator(ANSWERS).last).to_contain_text("w59", timeout=WAIT)
            wait_until_idle(first)
            second.locator("#send").click()
            expect(second.locator(ANSWERS).last).to_have_text("Hello from the scripted upstream.", timeout=WAIT)
            assert len(cloud.chat_requests()) == 2
            browser.close()

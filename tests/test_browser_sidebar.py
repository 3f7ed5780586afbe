"""The Chat tab's sidebar in Chromium, with 40 saved chats: grouped by date, scrolling inside itself (the page does
not grow), collapsible on a desktop, a drawer on a phone that closes when a chat is picked; a hostile title is
shown as text. Screenshots of the Chat tab at 1280x800 and 390x844 (empty, with 40 chats, mid-reply) go to
test-artifacts/."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from backend import Backend, Conversation, StoredMessage, load_settings
from backend.store import SQLStore
from tests.conftest import ARTIFACTS, scripted_config
from tests.test_browser import ANSWERS, MESSAGE_BOX, USER_MESSAGES, WAIT, open_chat, send, words
from tests.test_browser_conversations import chat_menu, item_titled, listed, open_id
from tests.upstream import Reply, ScriptedUpstream

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# The sidebar's handle (a whole pill) is clear of the window's edges, and of the tabs beside it.
HANDLE_CLEAR = """() => {
  const handle = document.querySelector("#sidebar .toggle-button").getBoundingClientRect();
  const tab = document.querySelector("button[role=tab]").getBoundingClientRect();
  const clear = handle.left >= 2 && handle.right <= window.innerWidth - 2;
  return clear && (document.querySelector("#sidebar.open") !== null || handle.right <= tab.left);
}"""
DAY = 86400
# Chat i was last changed AGES[i % 8] days ago (and i minutes earlier): every group gets some.
AGES = [0, 0, 1, 1, 3, 6, 12, 40]
TOPICS = ["Tide tables", "Sourdough starter", "Reverse proxies for websockets and SSE", "Asyncio cancellation"]


def seed_chats(data_dir: Path, count: int = 40) -> None:
    """`count` chats of one exchange each for the local owner, spread over the last weeks."""

    async def seed() -> None:
        store = SQLStore.for_settings(data_dir)
        now = time.time()
        for number in range(count):
            chat = Conversation(title=f"{TOPICS[number % len(TOPICS)]} {number}", model="scripted/scripted-1")
            chat.add(StoredMessage(role="user", text=f"Question {number}"))
            chat.add(StoredMessage(role="assistant", text=f"Answer {number}.", provider="scripted", model="scripted-1"))
            await store.conversations.save("local", chat)
            when = now - AGES[number % len(AGES)] * DAY - number * 60
            await store.database.run(  # the store stamps every save with the time it is made
                lambda connection, id_=chat.id, when=when: connection.exec_driver_sql(
                    "UPDATE conversations SET updated = ? WHERE id = ?", (when, id_)
                ),
                write=True,
            )
        await store.aclose()

    asyncio.run(seed())


@pytest.fixture
def forty(request: pytest.FixtureRequest, upstream: ScriptedUpstream, write_config, serve_app, tmp_path) -> Page:
    """The Chat tab over 40 saved chats, at 1280x800."""
    seed_chats(tmp_path / "data")
    page = open_chat(request, serve_app(Backend(load_settings(write_config(scripted_config(upstream))))))
    page.set_viewport_size(DESKTOP)
    expect(page.locator("#chat-list li.chat")).to_have_count(40, timeout=WAIT)
    return page


def in_view(page: Page, selector: str) -> bool:
    box = page.locator(selector).bounding_box()
    size = page.viewport_size
    return bool(box and size and box["y"] >= 0 and box["y"] + box["height"] <= size["height"] + 1)


def test_forty_chats_are_grouped_and_scroll_inside_the_sidebar(forty: Page, upstream: ScriptedUpstream):
    page = forty
    expect(page.locator("#chat-list section.group h3")).to_have_text(["Today", "Yesterday", "Previous 7 days", "Older"])
    today = page.locator("#chat-list section.group").first.locator("li.chat")
    expect(today).to_have_count(10)  # ages 0 and 0: 2 of every 8
    page.screenshot(path=str(ARTIFACTS / "sidebar-40-chats-desktop.png"))

    # The page does not grow with the list: the list scrolls inside the sidebar, Import stays at its foot, and the
    # message box and Send are on screen.
    assert page.evaluate("document.documentElement.scrollHeight") <= DESKTOP["height"] + 40
    chat_list = page.locator("#chat-list")
    assert chat_list.evaluate("(e) => e.scrollHeight > e.clientHeight + 200")
    for selector in ("#import", "#new-chat", "#chat-search", MESSAGE_BOX, "#send"):
        assert in_view(page, selector), selector
    chat_list.evaluate("(e) => { e.scrollTop = e.scrollHeight; }")
    last = page.locator("#chat-list li.chat").last
    expect(last).to_be_in_viewport()
    assert in_view(page, "#import") and in_view(page, "#new-chat")

    # The last chat's menu opens upwards, every item in view; Escape closes it and gives its button the focus.
    last.hover()
    last.locator("button.more").click()
    for choice in ("Rename", "Export as Markdown", "Export as JSON", "Delete"):
        expect(last.locator(".chat-menu").get_by_role("button", name=choice, exact=True)).to_be_in_viewport(ratio=1)
    page.keyboard.press("Escape")
    expect(last.locator(".chat-menu")).to_have_count(0)
    expect(last.locator("button.more")).to_be_focused()

    # Renamed, then another chat opened at once: the new title stays.
    chat_menu(page, "Asyncio cancellation 39", "Rename")
    page.locator("#chat-list input.rename").fill("Renamed in passing")
    page.locator("#chat-list input.rename").press("Enter")
    page.locator("#chat-list li.chat button.pick").first.click()
    page.wait_for_timeout(1500)  # both answers are in by now
    expect(page.locator("#chat-list li.chat button.pick", has_text="Renamed in passing")).to_have_count(1)

    # Opening the oldest marks it, and the next reply moves it to Today, at the top.
    last = page.locator("#chat-list li.chat").last
    last.locator("button.pick").scroll_into_view_if_needed()
    last.locator("button.pick").click()
    expect(last).to_have_class(re.compile(r"\bopen\b"), timeout=WAIT)
    opened = open_id(page)
    expect(page.locator(ANSWERS)).to_have_count(1, timeout=WAIT)
    upstream.enqueue(Reply.text(words(200), delay=0.02))
    send(page, "One more question")
    expect(page.locator(ANSWERS).last).to_contain_text("word010", timeout=WAIT)
    page.screenshot(path=str(ARTIFACTS / "chat-mid-reply-desktop.png"))
    expect(page.locator(ANSWERS).last).to_contain_text("word199", timeout=WAIT)
    first = page.locator("#chat-list li.chat").first
    expect(first).to_have_attribute("data-id", opened, timeout=WAIT)
    expect(first).to_have_class(re.compile(r"\bopen\b"))

    # The sidebar stays on every tab, and so the tabs stay where they are (they moved under the pointer); a chat
    # picked in it on another tab, or a new one, shows on the Chat tab.
    images = page.get_by_role("tab", name="Images")
    where = images.bounding_box()
    images.click()
    expect(page.get_by_placeholder("A lighthouse at dawn, watercolour")).to_be_visible(timeout=WAIT)
    expect(page.locator("#new-chat")).to_be_in_viewport()
    page.wait_for_timeout(500)  # (anything easing has eased)
    assert images.bounding_box() == where
    item_titled(page, "Asyncio cancellation 35").locator("button.pick").click()
    expect(page.get_by_role("tab", name="Chat")).to_have_attribute("aria-selected", "true", timeout=WAIT)
    expect(page.locator(USER_MESSAGES)).to_have_text(["Question 35"], timeout=WAIT)
    page.get_by_role("tab", name="Vision").click()
    page.locator("#new-chat").click()
    expect(page.get_by_role("tab", name="Chat")).to_have_attribute("aria-selected", "true", timeout=WAIT)
    expect(page.locator(USER_MESSAGES)).to_have_count(0, timeout=WAIT)
    expect(page.locator(MESSAGE_BOX)).to_be_focused()

    # Collapsible: the sidebar folds away and comes back.
    page.locator("#sidebar .toggle-button").click()
    expect(page.locator("#sidebar")).not_to_have_class(re.compile(r"\bopen\b"), timeout=WAIT)
    expect(page.locator("#new-chat")).not_to_be_in_viewport()
    page.screenshot(path=str(ARTIFACTS / "sidebar-collapsed-desktop.png"))
    page.locator("#sidebar .toggle-button").click()
    expect(page.locator("#new-chat")).to_be_in_viewport(timeout=WAIT)


def test_on_a_phone_the_list_is_a_drawer(forty: Page, upstream: ScriptedUpstream):
    """At 390x844 the chat and the message box come first; the list opens from a button and closes when a chat is
    picked, which then shows."""
    page = forty
    page.set_viewport_size(PHONE)
    page.reload()
    expect(page.locator(MESSAGE_BOX)).to_be_editable(timeout=WAIT)
    expect(page.locator("#sidebar")).not_to_have_class(re.compile(r"\bopen\b"), timeout=WAIT)
    for selector in (MESSAGE_BOX, "#send"):
        assert in_view(page, selector), selector
    expect(page.locator("#new-chat")).not_to_be_in_viewport()
    page.wait_for_function(HANDLE_CLEAR, timeout=WAIT)
    page.screenshot(path=str(ARTIFACTS / "chat-empty-phone.png"))

    page.locator("#sidebar .toggle-button").click()
    expect(page.locator("#new-chat")).to_be_in_viewport(ratio=1, timeout=WAIT)  # slid all the way in
    page.wait_for_function(HANDLE_CLEAR, timeout=WAIT)  # the drawer takes the whole width: its handle is inside
    expect(page.locator("#chat-list section.group h3").first).to_have_text("Today")
    page.screenshot(path=str(ARTIFACTS / "sidebar-40-chats-phone.png"))
    item_titled(page, "Sourdough starter 1").locator("button.pick").click()
    expect(page.locator("#sidebar")).not_to_have_class(re.compile(r"\bopen\b"), timeout=WAIT)
    expect(page.locator(USER_MESSAGES)).to_have_text(["Question 1"], timeout=WAIT)
    assert in_view(page, MESSAGE_BOX)

    upstream.enqueue(Reply.text(words(200), delay=0.02))
    send(page, "And on a phone?")
    expect(page.locator(ANSWERS).last).to_contain_text("word010", timeout=WAIT)
    page.screenshot(path=str(ARTIFACTS / "chat-mid-reply-phone.png"))
    expect(page.locator(ANSWERS).last).to_contain_text("word199", timeout=WAIT)

    # New chat, pressed in the drawer, closes it too: the empty chat and its message box are what shows.
    page.locator("#sidebar .toggle-button").click()
    expect(page.locator("#new-chat")).to_be_in_viewport(ratio=1, timeout=WAIT)
    page.locator("#new-chat").click()
    expect(page.locator("#sidebar")).not_to_have_class(re.compile(r"\bopen\b"), timeout=WAIT)
    expect(page.locator(USER_MESSAGES)).to_have_count(0, timeout=WAIT)
    assert in_view(page, MESSAGE_BOX)


def test_a_hostile_title_is_shown_as_text(
    request: pytest.FixtureRequest, upstream: ScriptedUpstream, write_config, serve_app
):
    """Gradio fills its HTML templates in as JavaScript template literals: a title with `${...}`, a backtick, a
    backslash or a tag shows as the characters typed, and runs nothing."""
    page = open_chat(request, serve_app(Backend(load_settings(write_config(scripted_config(upstream))))))
    send(page, "An innocent question")
    listed(page, "An innocent question")
    hostile = "${document.title='pwned'}`\\u0041 <img src=x onerror=\"window.hacked=1\"> & done"
    chat_menu(page, "An innocent question", "Rename")
    field = page.locator("#chat-list input.rename")
    field.fill(hostile)
    field.press("Enter")
    listed(page, hostile)
    expect(page.locator("#chat-list li.chat button.pick")).to_have_attribute("title", hostile)
    assert page.locator("#chat-list img").count() == 0
    assert page.evaluate("document.title") != "pwned"
    assert page.evaluate("window.hacked") is None
    page.reload()  # and as the list is first drawn
    listed(page, hostile)
    assert page.evaluate("document.title") != "pwned" and page.evaluate("window.hacked") is None


def test_dark_mode_keeps_everything_readable(forty: Page, upstream: ScriptedUpstream):
    """Gradio's dark theme (?__theme=dark): the list, the model line and a failed reply's error keep light text
    on dark ground. Screenshot for a look."""
    page = forty
    page.goto(page.url.split("?")[0] + "?__theme=dark")
    expect(page.locator("#chat-list li.chat")).to_have_count(40, timeout=WAIT)
    upstream.enqueue(Reply.text(words(20), drop_after=8))
    send(page, "Dark question")
    expect(page.locator("#chatbot .reply-error")).to_be_visible(timeout=WAIT)

    def luminance(selector: str, prop: str) -> float:
        value = page.locator(selector).first.evaluate(f"(e) => getComputedStyle(e).{prop}")
        red, green, blue = (float(part) for part in re.findall(r"[\d.]+", value)[:3])
        return (0.2126 * red + 0.7152 * green + 0.0722 * blue) / 255

    page.wait_for_function("document.body.classList.contains('dark')", timeout=WAIT)
    for selector in ("gradio-app", "#sidebar"):
        assert luminance(selector, "backgroundColor") < 0.2, selector
    for selector in ("#chat-list li.chat button.pick", "#model-info .ability", "#chatbot .reply-error"):
        assert luminance(selector, "color") > 0.45, selector
    page.screenshot(path=str(ARTIFACTS / "chat-dark-desktop.png"))

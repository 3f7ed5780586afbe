"""Copying and rendering in the Chat tab, in Chromium: the copy buttons give what was said (no provenance footer,
no reasoning, no error note), tables keep their column alignment and scroll sideways on a phone, and a failed
reply shows its error as an error (its own colour and icon) under the text that had arrived."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Page, expect

from backend import Backend, load_settings
from tests.conftest import ARTIFACTS, scripted_config
from tests.test_browser import ANSWERS, BOT_GROUPS, THOUGHT_TITLES, WAIT, open_chat, send, wait_until_idle, words
from tests.upstream import Reply, ScriptedUpstream

pytestmark = pytest.mark.browser

TABLE = (
    "| Item | Price | Note |\n"
    "|:-----|------:|:----:|\n"
    "| Tea | 3.50 | hot |\n"
    "| A rather long item name that needs room | 12.00 | a long note that goes on and on and on |\n"
)


@pytest.fixture
def copying(request: pytest.FixtureRequest, upstream: ScriptedUpstream, write_config, serve_app) -> Page:
    """The Chat tab in a browser context that may read the clipboard."""
    url = serve_app(Backend(load_settings(write_config(scripted_config(upstream)))))
    page = open_chat(request, url)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url.rstrip("/"))
    return page


def copied(page: Page, expected: str) -> None:
    """Wait until the clipboard holds `expected` (a copy button writes it asynchronously)."""
    deadline = time.monotonic() + WAIT / 1000
    text = None
    while time.monotonic() < deadline:
        text = page.evaluate("navigator.clipboard.readText()")
        if text == expected:
            return
        page.wait_for_timeout(100)
    assert text == expected


def copy_button(page: Page, group: int):
    """The Copy message button of the `group`-th reply (its buttons follow its row)."""
    buttons = page.locator(BOT_GROUPS).nth(group).locator("xpath=following-sibling::div[1]")
    return buttons.locator("button[aria-label='Copy message']")


def test_copy_gives_the_text_without_notes(copying: Page, upstream: ScriptedUpstream):
    page = copying
    upstream.enqueue(
        Reply.text(["The **answer**", " is 42."], reasoning=["Let me ", "think."]),
        Reply.text(["Second ", "answer."]),
    )
    send(page, "What is it?")
    expect(page.locator(ANSWERS).last).to_have_text("The answer is 42.", timeout=WAIT)
    wait_until_idle(page)
    send(page, "And then?")
    expect(page.locator(ANSWERS).last).to_have_text("Second answer.", timeout=WAIT)
    wait_until_idle(page)
    expect(page.locator(THOUGHT_TITLES)).to_have_count(3)  # reasoning and two footers, all shown

    copy_button(page, 0).click()
    copied(page, "The **answer** is 42.")
    copy_button(page, 1).click()
    copied(page, "Second answer.")
    page.locator("#chatbot button[aria-label='Copy conversation'], #chatbot button[title='Copy conversation']").click()
    copied(
        page, "user: What is it?\n\nassistant: The **answer** is 42.\n\nuser: And then?\n\nassistant: Second answer."
    )


def test_a_failed_reply_shows_its_error_as_an_error(copying: Page, upstream: ScriptedUpstream):
    page = copying
    upstream.enqueue(Reply.text(words(20), drop_after=8))  # 7 words, then the connection drops
    send(page, "Go on.")
    error = page.locator("#chatbot .reply-error")
    expect(error).to_contain_text("dropped before the answer was complete", timeout=WAIT)
    wait_until_idle(page)
    expect(page.locator(ANSWERS).last).to_have_text("".join(words(7)).strip())  # the partial text stays, above
    answer_box, error_box = page.locator(ANSWERS).last.bounding_box(), error.bounding_box()
    assert answer_box and error_box and error_box["y"] > answer_box["y"]
    red, green, blue = (int(part) for part in error.evaluate("(e) => getComputedStyle(e).color")[4:-1].split(",")[:3])
    assert red > 150 and green < 100 and blue < 100, (red, green, blue)  # the error colour, not the text colour
    assert error.inner_text().startswith("⚠️ ")
    frame = page.locator("#chatbot .thought-group").filter(has=page.locator(".reply-error"))
    assert frame.evaluate("(e) => getComputedStyle(e).borderTopStyle") == "solid"
    page.screenshot(path=str(ARTIFACTS / "chat-error-shown-as-error.png"))
    copy_button(page, 0).click()
    copied(page, "".join(words(7)).strip())


def test_tables_keep_alignment_and_scroll_sideways_on_a_phone(copying: Page, upstream: ScriptedUpstream):
    page = copying
    upstream.enqueue(Reply.text([TABLE]))
    send(page, "A table, please.")
    table = page.locator("#chatbot .bot-row table").last
    expect(table).to_be_visible(timeout=WAIT)
    wait_until_idle(page)
    aligns = (
        table.locator("tr")
        .nth(1)
        .locator("td")
        .evaluate_all("(cells) => cells.map((cell) => getComputedStyle(cell).textAlign)")
    )
    assert aligns == ["left", "right", "center"], aligns
    page.set_viewport_size({"width": 390, "height": 844})
    expect(page.locator("#new-chat")).not_to_be_in_viewport(timeout=WAIT)  # narrowed to a phone: the drawer folds
    cell = table.locator("td").nth(3)  # the long item name: whole words per line, never cut inside a word
    assert cell.evaluate("(e) => getComputedStyle(e).overflowWrap") != "anywhere"
    assert cell.evaluate("(e) => getComputedStyle(e).wordBreak") not in ("break-all", "break-word")
    scroller = table.evaluate(
        """(t) => { for (let e = t; e; e = e.parentElement) {
             const s = getComputedStyle(e);
             if ((s.overflowX === "auto" || s.overflowX === "scroll") && e.scrollWidth > e.clientWidth) return true;
           } return false; }"""
    )
    assert scroller, "a wide table scrolls sideways inside the chat, not the page"
    assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1
    page.screenshot(path=str(ARTIFACTS / "chat-table-phone.png"))

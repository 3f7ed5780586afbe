"""Replies that are never lost, in Chromium against the real app and the scripted upstream: a reply is generated on
the server, so a reload or a closed page mid-reply loses nothing; every chat has its address (?chat=ID); editing
and regenerating add versions that can be switched, and the model gets the branch on show; two tabs on one chat
both keep their exchanges."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from backend import Backend, load_settings
from tests.conftest import ARTIFACTS, scripted_config, stored_conversations
from tests.test_browser import (
    ANSWERS,
    MESSAGE_BOX,
    THOUGHT_TITLES,
    USER_MESSAGES,
    WAIT,
    answer,
    close_toasts,
    open_chat,
    send,
    sent_messages,
    toast,
    wait_for_footer,
    wait_until_idle,
    words,
)
from tests.test_browser_conversations import exchange, pick_model
from tests.upstream import Reply, ScriptedUpstream

pytestmark = pytest.mark.browser

VERSIONS = "#versions input[role='combobox']"


@pytest.fixture
def app_url(upstream: ScriptedUpstream, write_config, serve_app) -> str:
    return serve_app(Backend(load_settings(write_config(scripted_config(upstream)))))


def chat_id(page: Page) -> str:
    """The open chat's id, from the page's address."""
    expect(page).to_have_url(re.compile(r"\?chat=[0-9a-f]{16}$"), timeout=WAIT)
    return page.url.rsplit("=", 1)[1]


def stored(tmp_path: Path, conversation_id: str) -> dict:
    [found] = [c for c in stored_conversations(tmp_path / "data") if c["id"] == conversation_id]
    return found


def pick_version(page: Page, label: str) -> None:
    """Choose the version whose label starts with `label` in the Versions picker."""
    page.locator(VERSIONS).click()
    page.locator("[role='option']", has_text=label).first.click()


def reply_under_way(request: pytest.FixtureRequest, url: str, upstream: ScriptedUpstream, count: int, seen: str):
    """A page that sent a question whose reply (`count` words, 50 a second) has reached the word `seen`: the page,
    the reply's words and the chat's id."""
    reply = words(count)
    upstream.enqueue(Reply.text(reply, delay=0.02))
    page = open_chat(request, url)
    send(page, "Tell me a long story.")
    expect(answer(page)).to_contain_text(seen, timeout=WAIT)
    return page, reply, chat_id(page)


def test_reload_mid_reply_shows_the_text_so_far_and_follows_it_to_the_end(
    request: pytest.FixtureRequest, app_url: str, upstream: ScriptedUpstream, tmp_path: Path
):
    page, reply, conversation_id = reply_under_way(request, app_url, upstream, 300, "word010")  # six seconds

    page.reload()
    expect(page.locator(USER_MESSAGES)).to_have_text(["Tell me a long story."], timeout=WAIT)
    expect(answer(page)).to_contain_text("word000", timeout=WAIT)  # the text so far at once, then live
    expect(page.locator("#stop")).to_be_visible()
    wait_for_footer(page, "scripted/scripted-1")
    wait_until_idle(page)
    assert answer(page).inner_text().split() == "".join(reply).split()  # every word, once, in order
    assert len(upstream.chat_requests()) == 1  # followed, not asked again
    assert chat_id(page) == conversation_id
    [_question, kept] = stored(tmp_path, conversation_id)["messages"]
    assert kept["text"] == "".join(reply) and kept["status"] == "complete"
    page.screenshot(path=str(ARTIFACTS / "replies-after-reload.png"))


def test_stop_from_another_page_of_the_chat_ends_the_reply(
    request: pytest.FixtureRequest, upstream: ScriptedUpstream, write_config, serve_app, tmp_path: Path
):
    """Stop on a second page of the chat ends the reply (on a route: stored with the provider and model that
    answered, not the route's name), and both pages settle on it as stored."""
    config = scripted_config(upstream) + '\n[routes]\nbest = ["scripted/scripted-1"]\n'
    app_url = serve_app(Backend(load_settings(write_config(config))))
    upstream.enqueue(Reply.text(words(300), delay=0.02))
    page = open_chat(request, app_url)
    pick_model(page, "route · best → scripted/scripted-1")
    send(page, "Tell me a long story.")
    expect(answer(page)).to_contain_text("word005", timeout=WAIT)
    other = page.context.browser.new_page()
    other.goto(page.url)
    expect(answer(other)).to_contain_text("word010", timeout=WAIT)
    other.locator("#stop").click()
    request_ = upstream.chat_requests()[0]
    assert upstream.wait_for(lambda: request_.disconnected_at is not None, 10), "Stop did not close the upstream"
    for shown in (page, other):  # both pages settle on the stopped reply, as stored
        expect(shown.locator(THOUGHT_TITLES).last).to_have_text("■ Stopped", timeout=WAIT)
        wait_until_idle(shown)
    kept = stored(tmp_path, chat_id(page))["messages"][1]
    assert kept["status"] == "stopped" and kept["provider"] == "scripted" and kept["model"] == "scripted-1"
    assert answer(page).inner_text().strip() == kept["text"].strip() == answer(other).inner_text().strip()


def test_a_closed_page_does_not_end_the_reply(
    request: pytest.FixtureRequest, app_url: str, upstream: ScriptedUpstream, tmp_path: Path
):
    page, reply, conversation_id = reply_under_way(request, app_url, upstream, 150, "word005")  # three seconds
    context = page.context
    page.goto("about:blank")  # the page goes away mid-reply
    request_ = upstream.chat_requests()[0]
    assert upstream.wait_for(lambda: request_.finished_at is not None, 20), "the reply ended with its page"
    assert request_.disconnected_at is None

    again = context.browser.new_page()
    again.goto(f"{app_url}?chat={conversation_id}")
    expect(answer(again)).to_have_text("".join(reply).strip(), timeout=WAIT)
    wait_for_footer(again, "scripted/scripted-1")
    assert stored(tmp_path, conversation_id)["messages"][1]["text"] == "".join(reply)


def test_an_address_opens_only_its_owners_chat_and_back_moves_between_chats(
    request: pytest.FixtureRequest, app_url: str, upstream: ScriptedUpstream
):
    page = open_chat(request, app_url)
    exchange(page, "First chat", "Hello from the scripted upstream.")
    first = chat_id(page)
    page.locator("#new-chat").click()
    expect(page).not_to_have_url(re.compile(r"chat="), timeout=WAIT)
    exchange(page, "Second chat", "Hello from the scripted upstream.")
    second = chat_id(page)
    assert first != second
    # (Back and forward as the browser's buttons do them; the page loads again at the address moved to.)
    # The new chat took the place of the empty page it started as: back goes straight to the first chat.
    page.evaluate("history.back()")
    expect(page).to_have_url(re.compile(f"chat={first}$"), timeout=WAIT)
    expect(page.locator(USER_MESSAGES)).to_have_text(["First chat"], timeout=WAIT)
    page.evaluate("history.forward()")
    expect(page).to_have_url(re.compile(f"chat={second}$"), timeout=WAIT)
    expect(page.locator(USER_MESSAGES)).to_have_text(["Second chat"], timeout=WAIT)

    # An id that is not this owner's (here: none at all) opens nothing and says so in one sentence.
    page.goto(f"{app_url}?chat={'0' * 16}")
    toast(page, "That conversation does not exist (or is not yours).")
    expect(page.locator(USER_MESSAGES)).to_have_count(0)


def test_regenerate_and_edit_keep_versions_and_the_model_gets_the_branch_on_show(
    request: pytest.FixtureRequest, app_url: str, upstream: ScriptedUpstream, tmp_path: Path
):
    page = open_chat(request, app_url)
    upstream.enqueue(Reply.text(["Seven."]), Reply.text(["Eight."]))
    exchange(page, "Pick a number.", "Seven.")
    page.locator("#chatbot button[aria-label='Retry']").last.click()
    expect(answer(page)).to_have_text("Eight.", timeout=WAIT)
    wait_for_footer(page, "scripted/scripted-1")
    wait_until_idle(page)
    expect(page.locator(VERSIONS)).to_have_value(re.compile(r"^Answer 1 · 2/2 · Eight\."), timeout=WAIT)

    pick_version(page, "Answer 1 · 1/2")  # the first answer is still there
    expect(answer(page)).to_have_text("Seven.", timeout=WAIT)
    upstream.enqueue(Reply.text(["Fourteen."]))
    exchange(page, "Double it.", "Fourteen.")
    assert sent_messages(upstream.chat_requests()[-1]) == [
        {"role": "user", "content": "Pick a number."},
        {"role": "assistant", "content": "Seven."},  # the version on show, not the newest
        {"role": "user", "content": "Double it."},
    ]

    # An emptied question is refused, as an empty message is.
    page.locator("#chatbot button[aria-label='Edit']").first.click()
    page.locator("#chatbot textarea.edit-textarea").fill("  ")
    page.locator("#chatbot button[aria-label='Submit']").click()
    toast(page, "Type a message first.")
    page.wait_for_timeout(500)
    assert len(upstream.chat_requests()) == 3  # nothing sent
    page.screenshot(path=str(ARTIFACTS / "replies-empty-edit.png"))

    # Edit the first question: a new version of it, answered alone; the old one keeps what followed it.
    upstream.enqueue(Reply.text(["Forty-two."]))
    page.locator("#chatbot button[aria-label='Edit']").first.click()
    editor = page.locator("#chatbot textarea.edit-textarea")
    expect(editor).to_have_value("Pick a number.", timeout=WAIT)
    editor.fill("Pick a big number.")
    page.locator("#chatbot button[aria-label='Submit']").click()
    expect(answer(page)).to_have_text("Forty-two.", timeout=WAIT)
    wait_until_idle(page)
    assert sent_messages(upstream.chat_requests()[-1]) == [{"role": "user", "content": "Pick a big number."}]
    expect(page.locator(USER_MESSAGES)).to_have_text(["Pick a big number."])
    page.screenshot(path=str(ARTIFACTS / "replies-versions.png"))

    pick_version(page, "Question 1 · 1/2")
    expect(page.locator(USER_MESSAGES)).to_have_text(["Pick a number.", "Double it."], timeout=WAIT)
    expect(page.locator(ANSWERS)).to_have_text(["Seven.", "Fourteen."])
    # The switch is stored: a reload shows the same branch.
    page.reload()
    expect(page.locator(USER_MESSAGES)).to_have_text(["Pick a number.", "Double it."], timeout=WAIT)
    kept = stored(tmp_path, chat_id(page))
    texts = ["Pick a number.", "Seven.", "Eight.", "Double it.", "Fourteen.", "Pick a big number.", "Forty-two."]
    assert [m["text"] for m in kept["nodes"]] == texts  # nothing was deleted
    assert [m["text"] for m in kept["messages"]] == ["Pick a number.", "Seven.", "Double it.", "Fourteen."]

    # Undo takes the last exchange off the branch on show; it stays, and can be shown again.
    page.locator("#chatbot button[aria-label='Undo']").last.click()
    expect(page.locator(MESSAGE_BOX)).to_have_value("Double it.", timeout=WAIT)
    expect(page.locator(USER_MESSAGES)).to_have_text(["Pick a number."])
    # The picker sends its value again when it closes: that changes nothing (the undo stays undone).
    page.locator(VERSIONS).click()
    page.keyboard.press("Escape")
    page.locator("#chatbot").click()
    page.reload()
    expect(page.locator(USER_MESSAGES)).to_have_text(["Pick a number."], timeout=WAIT)
    pick_version(page, "Question 2 · 1/1 undone · Double it.")
    expect(page.locator(USER_MESSAGES)).to_have_text(["Pick a number.", "Double it."], timeout=WAIT)
    expect(page.locator(ANSWERS)).to_have_text(["Seven.", "Fourteen."])


def test_two_tabs_on_one_chat_both_keep_their_exchanges(
    request: pytest.FixtureRequest, app_url: str, upstream: ScriptedUpstream, tmp_path: Path
):
    tab_a = open_chat(request, app_url)
    upstream.enqueue(Reply.text(["One."]), Reply.text(["Two."]), Reply.text(["Three."]))
    exchange(tab_a, "First from A", "One.")
    conversation_id = chat_id(tab_a)
    tab_b = tab_a.context.browser.new_page()
    tab_b.goto(tab_a.url)
    expect(tab_b.locator(USER_MESSAGES)).to_have_text(["First from A"], timeout=WAIT)

    exchange(tab_a, "Second from A", "Two.")
    send(tab_b, "From B")  # B still shows only the first exchange
    toast(tab_b, "changed in another tab")
    expect(answer(tab_b)).to_have_text("Three.", timeout=WAIT)
    wait_until_idle(tab_b)
    expect(tab_b.locator(USER_MESSAGES)).to_have_text(["First from A", "From B"])
    assert sent_messages(upstream.chat_requests()[-1]) == [
        {"role": "user", "content": "First from A"},
        {"role": "assistant", "content": "One."},
        {"role": "user", "content": "From B"},
    ]
    kept = stored(tmp_path, conversation_id)
    assert [m["text"] for m in kept["nodes"]] == ["First from A", "One.", "Second from A", "Two.", "From B", "Three."]
    pick_version(tab_b, "Question 2 · 1/2")  # A's turn, a version of the same turn
    expect(tab_b.locator(USER_MESSAGES)).to_have_text(["First from A", "Second from A"], timeout=WAIT)
    expect(tab_b.locator(ANSWERS)).to_have_text(["One.", "Two."])
    expect(tab_b.locator(MESSAGE_BOX)).to_be_editable()


def test_opening_another_chat_mid_reply_leaves_the_reply_running_and_the_new_view_alone(
    request: pytest.FixtureRequest, app_url: str, upstream: ScriptedUpstream, tmp_path: Path
):
    page, reply, first = reply_under_way(request, app_url, upstream, 150, "word005")  # three seconds
    page.locator("#new-chat").click()
    expect(page.locator(USER_MESSAGES)).to_have_count(0, timeout=WAIT)
    expect(page.locator(MESSAGE_BOX)).to_be_editable(timeout=WAIT)  # Send is back for the new chat
    request_ = upstream.chat_requests()[0]
    assert upstream.wait_for(lambda: request_.finished_at is not None, 20)
    page.wait_for_timeout(500)  # the end of the reply reaches no page that shows another chat
    expect(page.locator(USER_MESSAGES)).to_have_count(0)
    exchange(page, "Something else", "Hello from the scripted upstream.")
    assert chat_id(page) != first
    page.goto(f"{app_url}?chat={first}")
    expect(answer(page)).to_have_text("".join(reply).strip(), timeout=WAIT)


def scroll_state(page: Page) -> dict:
    return page.evaluate(
        """() => { const w = document.querySelector('#chatbot .bubble-wrap');
                   return {top: w.scrollTop, end: w.scrollHeight - w.clientHeight}; }"""
    )


def test_the_chat_follows_a_reply_only_at_its_end_and_typing_goes_on_meanwhile(
    request: pytest.FixtureRequest, app_url: str, upstream: ScriptedUpstream
):
    page = open_chat(request, app_url)
    upstream.enqueue(Reply.text(words(20)), Reply.text([f"line {n}\n\n" for n in range(200)], delay=0.03))
    exchange(page, "Warm up.", "".join(words(20)).strip())
    expect(page.locator(MESSAGE_BOX)).to_be_focused(timeout=WAIT)  # focus back after a reply

    send(page, "Write many lines.")
    expect(answer(page)).to_contain_text("line 40", timeout=WAIT)
    state = scroll_state(page)
    assert state["end"] - state["top"] < 60, state  # following the stream at the end
    page.locator("#chatbot .bubble-wrap").evaluate("w => w.scrollTo(0, 0)")  # scroll up to read
    page.wait_for_timeout(800)
    assert scroll_state(page)["top"] < 5  # stays put while the reply grows
    # Typing meanwhile: the box is open; Enter sends the message when the reply ends (the text stays till then).
    box = page.locator(MESSAGE_BOX)
    expect(box).to_be_editable()
    box.fill("And then?")
    box.press("Enter")
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / "replies-typing-during-reply.png"))
    expect(box).to_have_value("And then?")
    expect(page.locator(USER_MESSAGES)).to_have_count(2)
    page.locator("#chatbot .bubble-wrap").evaluate("w => w.scrollTo(0, w.scrollHeight)")  # back to the end
    page.wait_for_timeout(500)
    state = scroll_state(page)
    assert state["end"] - state["top"] < 60, state  # following again
    expect(page.locator(USER_MESSAGES)).to_have_count(3, timeout=WAIT)  # sent once the reply ended
    expect(box).to_have_value("")
    # ... and its reply is shown as it comes (the page follows it, though it still ended the previous one's).
    expect(answer(page)).to_have_text("Hello from the scripted upstream.", timeout=WAIT)
    wait_for_footer(page, "scripted/scripted-1")
    wait_until_idle(page)
    assert sent_messages(upstream.chat_requests()[-1])[-1] == {"role": "user", "content": "And then?"}
    assert "line 199" in sent_messages(upstream.chat_requests()[-1])[-2]["content"]  # after the whole reply
    page.locator("#new-chat").click()
    expect(page.locator(USER_MESSAGES)).to_have_count(0, timeout=WAIT)
    expect(box).to_be_focused(timeout=WAIT)  # and after New chat


def test_a_message_sent_while_a_reply_is_written_is_answered_on_the_page_and_words_typed_after_it_stay(
    request: pytest.FixtureRequest, app_url: str, upstream: ScriptedUpstream
):
    """A message sent while a reply is written waits for it to end (a toast says so), its text in the box till
    then; then it is sent and its own reply is shown as it comes (its step follows it though the first one's is
    still ending: Gradio drops a second trigger of a step still running unless told otherwise, which the page
    did about two times in three). What is typed meanwhile, after it or before it, stays in the box; only what
    was there at Enter is sent. Five rounds; each first reply waits (its upstream stalls) until Stop ends it."""
    page = open_chat(request, app_url)
    box = page.locator(MESSAGE_BOX)
    for round in range(5):
        stalled = Reply.text([f"w{n} " for n in range(10)], stall_after=4)
        upstream.enqueue(stalled, Reply.text([f"Answer {round}."]))
        send(page, f"Question {round}.")
        expect(page.locator(ANSWERS)).to_have_count(2 * round + 1, timeout=WAIT)  # its reply is being written
        send(page, f"Follow-up {round}.")
        # Typed as a person types, keys 40 ms apart, once the message is on its way (its toast): Gradio reads the
        # box when it sends the event, after Enter by a few milliseconds (more on a busy machine: CI's 300 ms
        # were once too few), and a key typed before that is sent with the message. After the text waiting there,
        # or before it.
        toast(page, "Your message is sent when the reply being written ends.")
        close_toasts(page)  # (the next round's is a new one)
        box.press("End" if round % 2 == 0 else "Home")
        added = f" Typed meanwhile {round}." if round % 2 == 0 else f"Typed meanwhile {round}. "
        box.press_sequentially(added, delay=40)
        expect(page.locator(USER_MESSAGES)).to_have_count(2 * round + 1)  # still waiting for the reply
        page.locator("#stop").click()
        expect(page.locator(ANSWERS).last).to_have_text(f"Answer {round}.", timeout=WAIT)
        wait_until_idle(page)
        assert sent_messages(upstream.chat_requests()[-1])[-1] == {"role": "user", "content": f"Follow-up {round}."}
        expect(box).to_have_value(f"Typed meanwhile {round}.")
    expect(page.locator(USER_MESSAGES)).to_have_count(10)


def test_a_message_sent_right_after_another_is_answered_on_the_page(
    request: pytest.FixtureRequest, app_url: str, upstream: ScriptedUpstream
):
    """A second message sent as soon as the box took the first waits for the first reply, then its own reply is
    shown as it comes, and the first one's end draws nothing over it."""
    page = open_chat(request, app_url)
    upstream.enqueue(Reply.text(["Paris."]), Reply.text(["Madrid", ", ", "of course."], delay=0.3))
    send(page, "What is the capital of France?")
    expect(page.locator(MESSAGE_BOX)).to_have_value("", timeout=WAIT)  # taken (typing earlier races the clearing)
    send(page, "And of Spain?")  # at once
    expect(page.locator(USER_MESSAGES)).to_have_count(2, timeout=WAIT)
    expect(page.locator("#stop")).to_be_visible(timeout=WAIT)  # while the second reply is written
    expect(page.locator(ANSWERS)).to_have_text(["Paris.", "Madrid, of course."], timeout=WAIT)
    wait_until_idle(page)
    expect(page.locator(ANSWERS)).to_have_text(["Paris.", "Madrid, of course."])

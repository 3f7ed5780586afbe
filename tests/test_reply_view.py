"""How a reply is laid out in the Chatbot, and what of the chat goes back to the model."""

from __future__ import annotations

import pytest

from backend import Finish, Queued, ReasoningDelta, Resumed, Retrying, Started, TextDelta, Usage
from backend.errors import RateLimitError
from webui.reply import ReplyView, conversation, join_markdown, split_markdown, stopped_marker


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
        "content": "Thinking.",
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
    assert titles(view.messages()) == ["⏳ Waiting for local/gemma-3-270m…"]
    view.apply(Queued(ahead=2))
    assert titles(view.messages()) == ["⏳ Waiting for the model: 2 requests ahead"]
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
    assert error["metadata"]["title"] == "⚠️ openai/gpt is rate limiting requests; try again in 12 s."


def test_conversation_sends_only_user_and_answer_text():
    history = [
        {"role": "user", "content": [{"type": "text", "text": "Hi"}], "metadata": None},
        {"role": "assistant", "content": "thinking", "metadata": {"title": "Reasoning", "status": "done"}},
        {"role": "assistant", "content": [{"type": "text", "text": "Hello!"}], "metadata": None},
        {"role": "assistant", "content": "", "metadata": {"title": "local · 3 tok/s", "status": "done"}},
        {"role": "user", "content": "Again"},
        {"role": "assistant", "content": "Partial"},
        stopped_marker(),
    ]
    assert conversation(history, "Be brief.") == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Again"},
        {"role": "assistant", "content": "Partial"},
    ]
    assert conversation(history, None)[0] == {"role": "user", "content": "Hi"}


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
    history = conversation([{"role": "user", "content": "Code?"}, *view.messages()])
    assert history[1] == {"role": "assistant", "content": "Code:\n\n```python\nx = 1\n```\nDone."}
    stored = view.to_stored()
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
def test_split_and_join_markdown_round_trip(text):
    for cut in range(len(text) + 1):
        before, after = split_markdown(text, [cut])
        assert join_markdown(before, after) == text, (text, cut)

"""Two tabs of one user on one chat, through the real app: every save states the revision it read, so a tab
working on an older copy never overwrites the other's turns; its message is added to what is stored now."""

from __future__ import annotations

import asyncio

from tests.gradio_http import GradioSession
from tests.test_share_mode import _load_fn, shared  # noqa: F401  (the fixture)


def test_two_tabs_sending_into_one_chat_lose_nothing(shared):  # noqa: F811
    url, cloud, backend = shared()
    tab_a = GradioSession(url, "alice", "alice-secret")
    tab_b = GradioSession(url, "alice", "alice-secret")
    submit = tab_a.fn_index("message", "submit")
    respond = submit + 1

    def send(tab: GradioSession, text: str, history: list) -> list:
        message = [{"text": text, "files": []}, history, None, "cloud/chat", "", 0.7, 1, 0, -1, "", ""]
        added = tab.call(submit, message)
        assert added["success"], added
        shown = added["output"]["data"][0]
        replied = tab.call(respond, [shown, None, "cloud/chat", "", 0.7, 1, 0, -1, ""])
        assert replied["success"], replied
        return replied["output"]["data"][0]

    shown_a = send(tab_a, "first from A", [])
    [summary] = asyncio.run(backend.conversations.list("alice"))
    tab_b.call(_load_fn(tab_b), [])  # B's page loads, listing the chat
    opened = tab_b.call(tab_b.fn_index("chat-list", "input"), [summary.id])  # and opens it
    assert opened["success"]
    shown_b = opened["output"]["data"][0]
    send(tab_a, "second from A", shown_a)  # A goes on; B's copy is now old
    shown_b = send(tab_b, "from B", shown_b)

    stored = asyncio.run(backend.conversations.get("alice", summary.id))
    users = [message.text for message in stored.messages if message.role == "user"]
    assert users == ["first from A", "second from A", "from B"]
    assert len(stored.messages) == 6  # every question with its answer
    assert "second from A" in str(shown_b)  # B now shows the chat as stored
    # The model answering B was sent the chat as stored, A's second turn included.
    sent = [message["content"] for message in cloud.chat_requests()[-1].body["messages"]]
    assert sent[::2] == ["first from A", "second from A", "from B"]
    tab_a.close()
    tab_b.close()

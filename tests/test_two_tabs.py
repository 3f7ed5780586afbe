"""Two tabs of one user on one chat, through the real app: every save states the revision it read, so a tab
working on an older copy never overwrites the other's turns. Its message is added where that tab's page had it,
to what is stored now: after the last turn the tab showed, as a version of the turn the other tab added meanwhile
(so the model answers it in the context its sender saw, and both exchanges are kept)."""

from __future__ import annotations

import asyncio

from tests.gradio_http import GradioSession
from tests.test_share_mode import _load_fn, shared  # noqa: F401  (the fixture)


def test_two_tabs_sending_into_one_chat_lose_nothing(shared):  # noqa: F811
    url, cloud, backend = shared()
    tab_a = GradioSession(url, "alice", "alice-secret")
    tab_b = GradioSession(url, "alice", "alice-secret")
    submit = tab_a.fn_index("message", "submit")
    follow = submit + 1

    def send(tab: GradioSession, text: str, history: list) -> list:
        message = [{"text": text, "files": []}, history, None, "cloud/chat", "", 0.7, 1, 0, -1, "", ""]
        added = tab.call(submit, message)
        assert added["success"], added
        shown = added["output"]["data"][0]
        replied = tab.call(follow, [shown, None, ""])
        assert replied["success"], replied
        return replied["output"]["data"][0]

    shown_a = send(tab_a, "first from A", [])
    [summary] = asyncio.run(backend.conversations.list("alice"))
    tab_b.call(_load_fn(tab_b), [None])  # B's page loads, listing the chat
    opening = {"groups": [], "action": {"kind": "open", "id": summary.id}}
    opened = tab_b.call(tab_b.fn_index("chat-list", "select"), [opening])  # and opens it
    assert opened["success"]
    shown_b = opened["output"]["data"][0]
    send(tab_a, "second from A", shown_a)  # A goes on; B's copy is now old
    shown_b = send(tab_b, "from B", shown_b)

    stored = asyncio.run(backend.conversations.get("alice", summary.id))
    every = [message.text for message in stored.nodes if message.role == "user"]
    assert every == ["first from A", "second from A", "from B"]  # nothing lost
    assert len(stored.nodes) == 6  # every question with its answer
    shown = [message.text for message in stored.messages if message.role == "user"]
    assert shown == ["first from A", "from B"]  # B's branch, on show
    [b_question] = [n for n, message in enumerate(stored.nodes) if message.text == "from B"]
    assert [stored.nodes[n].text for n in stored.versions(b_question)] == ["second from A", "from B"]
    assert "from B" in str(shown_b) and "second from A" not in str(shown_b)
    # The model answering B was sent what B's page showed: A's first turn and B's question.
    sent = [message["content"] for message in cloud.chat_requests()[-1].body["messages"]]
    assert sent[::2] == ["first from A", "from B"]
    tab_a.close()
    tab_b.close()


def test_a_chat_deleted_in_one_tab_is_said_so_in_the_other(shared, caplog):  # noqa: F811
    """Tab B deletes the chat tab A has open; A then renames it, undoes in it or sends into it: each is one
    sentence (no error popup, no traceback in the log), and nothing comes back to life."""
    url, _cloud, backend = shared()
    tab_a = GradioSession(url, "alice", "alice-secret")
    tab_b = GradioSession(url, "alice", "alice-secret")
    submit = tab_a.fn_index("message", "submit")
    added = tab_a.call(submit, [{"text": "doomed", "files": []}, [], None, "cloud/chat", "", 0.7, 1, 0, -1, "", ""])
    assert added["success"], added
    chat_id = added["output"]["data"][-1]
    tab_a.call(submit + 1, [added["output"]["data"][0], None, ""])  # A follows the reply to its end
    tab_b.call(_load_fn(tab_b), [None])
    deleted = tab_b.call(tab_b.fn_index("chat-list", "delete"), [{"action": {"kind": "delete", "id": chat_id}}, "", ""])
    assert deleted["success"], deleted

    rename = {"action": {"kind": "rename", "id": chat_id, "title": "back from the dead"}}
    renamed = tab_a.call(tab_a.fn_index("chat-list", "edit"), [rename, None, chat_id, ""])
    assert renamed["success"], renamed  # said in a toast; the outputs left as they were
    message = [{"text": "still there?", "files": []}, [], None, "cloud/chat", "", 0.7, 1, 0, -1, "", chat_id]
    sent = tab_a.call(submit, message)
    assert not sent["success"] and "deleted in another tab" in sent["output"]["error"], sent
    assert asyncio.run(backend.conversations.list("alice")) == []  # nothing came back to life
    assert "Traceback" not in caplog.text
    tab_a.close()
    tab_b.close()

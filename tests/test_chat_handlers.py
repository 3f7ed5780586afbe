"""The Chat tab's handlers called directly, without a browser or a server: a real Backend over the scripted
upstream and the SQLite store, the tab's real components (built in a Blocks, not rendered), and a real
`gr.Request` for each visitor. Each handler answers with the components it changes, keyed by component; one that
changes nothing answers `gr.skip()` and says why."""

from __future__ import annotations

import json
from typing import Any

import gradio as gr
import pytest
from starlette.requests import Request

from backend import Backend, VisitorLimits, load_settings
from tests.conftest import scripted_config
from tests.gradio_http import answer_text
from webui.chat.handlers import ChatHandlers
from webui.chat.page import ChatPage, render_page
from webui.streaming import Pacer

MODEL = "scripted/scripted-1"
SETTINGS = {"model": MODEL, "system_prompt": "Be brief.", "temperature": 0.2, "top_p": 1.0, "max_tokens": 0, "seed": -1}


def visitor(username: str, session: str = "page-1", query: bytes = b"") -> gr.Request:
    """The request Gradio hands a handler for `username`'s page (`session`), at an address with `query`."""
    scope = {
        "type": "http",
        "method": "POST",
        "scheme": "http",
        "path": "/gradio_api/queue/join",
        "root_path": "",
        "query_string": query,
        "headers": [(b"host", b"127.0.0.1:7860")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 7860),
    }
    return gr.Request(Request(scope), username=username, session_hash=session)


@pytest.fixture
async def tab(upstream, write_config):
    """The Chat tab's handlers and page over a Backend whose one provider is the scripted upstream."""
    backend = Backend(load_settings(write_config(scripted_config(upstream))))
    await backend.open_store()
    with gr.Blocks():
        page = render_page([(MODEL, MODEL)], MODEL, "")
    yield ChatHandlers(backend, VisitorLimits.off(), Pacer(0.01, 100), page), page
    await backend.aclose()


async def sent(on: ChatHandlers, page: ChatPage, request: gr.Request, text: str, **before: Any) -> dict:
    """Send `text` as the message box does (after the chat `before` shows, if any), follow its reply to its end:
    what the page shows then."""
    values = {"chat_history": [], "conversation": None, "conversation_id": "", "query": "", **before, **SETTINGS}
    added = await on.add_message(request, message={"text": text, "files": []}, **values)
    shown = {}
    async for update in on.follow(
        request, chat_history=added[page.chatbot], conversation=added[page.current], query=""
    ):
        shown.update(update)
    return {**added, **shown}


async def test_a_message_is_saved_answered_and_each_step_names_only_what_it_changes(tab, upstream):
    on, page = tab
    alice = visitor("alice")
    message = {"text": "Hello?", "files": []}
    values = {"chat_history": [], "conversation": None, "conversation_id": "", "query": "", **SETTINGS}
    assert await on.check_message(alice, message=message, **values) == {page.message: gr.validate(True, "")}
    added = await on.add_message(alice, message=message, **values)
    changed = {page.chatbot, page.versions, page.taken, page.send, page.stop, page.current, page.chats, page.open_id}
    assert set(added) == changed
    assert added[page.chatbot] == [{"role": "user", "content": "Hello?"}]  # the reply is drawn by `follow`
    assert json.loads(added[page.taken]) == {"text": "Hello?", "files": []}  # what the page takes out of the box
    assert added[page.send]["visible"] is False and added[page.stop]["visible"] is True
    following = on.follow(alice, chat_history=added[page.chatbot], conversation=added[page.current], query="")
    updates = [update async for update in following]
    assert all(set(update) <= {page.chatbot, page.versions, page.current, page.chats} for update in updates)
    last = updates[-1]
    assert answer_text(last[page.chatbot]) == "Hello from the scripted upstream."
    assert set(await on.finish(alice, conversation=last[page.current])) == {page.send, page.stop}
    stored = await on.store.get("alice", added[page.open_id])
    assert stored.settings == {k: v for k, v in SETTINGS.items() if k != "model"}
    assert [(m.role, m.text) for m in stored.messages] == [
        ("user", "Hello?"),
        ("assistant", "Hello from the scripted upstream."),
    ]
    body = upstream.chat_requests()[0].body
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["temperature"] == 0.2
    assert not {"top_p", "max_tokens", "seed"} & set(body)  # at the model's own values: not sent


async def test_an_empty_message_is_refused_at_the_message_box(tab):
    on, page = tab
    values = {"chat_history": [], "conversation": None, "conversation_id": "", "query": "", **SETTINGS}
    refused = await on.check_message(visitor("alice"), message={"text": "  ", "files": []}, **values)
    assert refused == {page.message: gr.validate(False, "Type a message first.")}


async def test_a_chat_opens_for_its_owner_with_its_settings_and_for_nobody_else(tab):
    on, page = tab
    chat_id = (await sent(on, page, visitor("alice"), "Hello?"))[page.open_id]
    picked = {"groups": [], "action": {"kind": "open", "id": chat_id}}
    with pytest.warns(UserWarning):  # said in a toast; nothing opens
        assert await on.open_listed(visitor("bob"), value=picked) == gr.skip()
    opened = await on.open_listed(visitor("alice", "page-2"), value=picked)
    assert set(opened) == {
        page.chatbot,
        page.versions,
        page.current,
        *page.settings.components(),
        page.download,
        page.open_id,
    }
    assert opened[page.open_id] == chat_id
    assert opened[page.settings.system_prompt] == "Be brief." and opened[page.settings.temperature] == 0.2
    assert answer_text(opened[page.chatbot]) == "Hello from the scripted upstream."
    # A page loaded at the chat's address opens it too, and lists it.
    loaded = await on.load_page(visitor("alice", "page-3", b"chat=" + chat_id.encode()), offset_minutes=0)
    assert loaded[page.open_id] == chat_id and page.chats in loaded


async def test_undo_with_no_chat_open_changes_nothing_and_says_why(tab):
    on, _ = tab
    undo = gr.UndoData(None, {"index": 0, "value": "Hello?"})
    with pytest.warns(UserWarning, match="Nothing to undo while a reply is being written."):
        skipped = await on.undo(
            visitor("alice"), undo, chat_history=[], conversation=None, conversation_id="", draft=None
        )
    assert skipped == gr.skip()


async def test_retry_answers_again_and_keeps_the_first_answer_as_a_version(tab, upstream):
    on, page = tab
    alice = visitor("alice")
    first = await sent(on, page, alice, "Hello?")
    shown, current, chat_id = first[page.chatbot], first[page.current], first[page.open_id]
    retry = gr.RetryData(None, {"index": 1, "value": shown[1]["content"]})
    again = await on.retry(alice, retry, chat_history=shown, conversation=current, conversation_id=chat_id, **SETTINGS)
    assert set(again) == {page.chatbot, page.versions, page.send, page.stop, page.current}
    async for update in on.follow(alice, chat_history=again[page.chatbot], conversation=again[page.current], query=""):
        again.update(update)
    versions = again[page.versions]
    assert versions["visible"] is True and len(versions["choices"]) == 2  # the first answer and the new one
    stored = await on.store.get("alice", chat_id)
    assert [m.role for m in stored.messages] == ["user", "assistant"]
    assert len(upstream.chat_requests()) == 2

"""The open chat as a page shows it. A page keeps of its chat only a `ShownChat` (which one, the revision it read,
the branch on show: `page.current`); the conversation itself is held once for every page showing it
(`backend.open_chats`), and a change is made to a fork of it (`ChatView.change`), merged with what another tab changed
meanwhile. Everything is per owner: a page never reads another owner's chats."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

from backend import (
    Backend,
    Conversation,
    ConversationError,
    ShownChat,
    StaleConversationError,
    SwitchboardError,
    sized,
)

from ..identity import owner_of
from ..refusals import refusal
from . import history, model_info
from .chat_list import listing
from .page import ChatPage, Updates
from .pages import Pages

CHAT_DELETED = "This chat was deleted in another tab or window; start a new one."
PICK_VERSION = "Pick a version to show it"


class ChatView:
    """What a page shows of a conversation, and a page's changes to it."""

    def __init__(self, backend: Backend, pages: Pages, page: ChatPage) -> None:
        self.backend = backend
        self.pages = pages
        self.page = page

    async def reopened(self, on_show: ShownChat | None, conversation_id: str | None, owner: str) -> Conversation | None:
        """The open conversation as this page shows it (`on_show`, what the session keeps of it), or as stored
        now when the session keeps none (the page's address names it: its session was forgotten); never another
        owner's (only `owner`'s conversations are looked in); None when none is open."""
        if on_show is not None:
            conversation = await self.backend.open_chats.view(owner, on_show)
            if conversation is None:
                raise refusal(CHAT_DELETED)
            return conversation
        if not conversation_id:
            return None
        try:
            return await self.backend.open_chats.latest(owner, conversation_id)
        except SwitchboardError:
            return None

    def kept(self, owner: str, conversation: Conversation | None) -> ShownChat | None:
        """What the session keeps of the conversation it shows from now on."""
        return None if conversation is None else self.backend.open_chats.keep(owner, conversation)

    async def listed(self, request: gr.Request, selected: str | None = None, query: str = "") -> dict[str, Any]:
        """The owner's chats matching the search box, grouped by date in the page's time zone, `selected` marked;
        a search that finds none says so where the list would be."""
        query = query or ""  # as the page sends it (None, from a page that had not drawn the box)
        found = await self.backend.conversations.list(owner_of(request), query)
        empty = "No chats match" if query.strip() else "No chats yet"
        return listing(found, selected, empty=empty, offset_minutes=self.pages.offset(request))

    async def shown(self, owner: str, conversation: Conversation | None, *, live: bool | None = None) -> Updates:
        """The chat's messages and the versions picker for the conversation; without the reply being generated
        at its end when `live` (by default: when one is being generated in it), as the page's follower draws it."""
        if conversation is None:
            return {self.page.chatbot: [], self.page.versions: gr.update(choices=[], value=None, visible=False)}
        if live is None:  # generated here; or, with replicas, maybe on another (streaming in the store until it ends)
            live = self.backend.replies.running(owner, conversation.id) is not None or (
                self.backend.replies.relay is not None and history.reply_streaming(conversation)
            )
        messages, choices, on_show = await history.view(self.backend, owner, conversation, live=live)
        # No turn on show has versions (an exchange was undone): the picker says what it is for, not nothing.
        picker = gr.update(choices=choices, value=PICK_VERSION if on_show is None else on_show, visible=bool(choices))
        return {self.page.chatbot: messages, self.page.versions: picker}

    async def change(
        self, owner: str, conversation: Conversation, change: Callable[[Conversation], object], *, touch: bool = True
    ) -> Conversation:
        """Make this page's `change` to the conversation and store it (`touch`: dated now, first in the list). When
        another tab (or page, or process) changed the stored conversation since this page read it, nothing of
        either is lost: the change is made again to what is stored now, and that is what the page shows from then
        on (returned, a new object). Changes name messages by their node numbers, which never change (messages
        are only ever added), so they mean the same there."""
        store = self.backend.conversations
        changed = conversation.fork()  # what pages show stays as it was (and as it is if this fails)
        change(changed)
        try:
            await store.save(owner, changed, touch=touch)
            return changed
        except StaleConversationError:
            try:
                fresh = await store.get(owner, conversation.id)
            except SwitchboardError:
                raise ConversationError(CHAT_DELETED) from None
            change(fresh)
            await store.save(owner, fresh, touch=touch)
            gr.Info("This chat was changed in another tab meanwhile; it now shows both changes.")
            return fresh

    async def model_line(self, owner: str, on_show: ShownChat | None, model_id: str | None) -> str:
        """The model line's HTML for the open conversation (as the page shows it) and the picked model."""
        conversation = await self.backend.open_chats.view(owner, on_show) if on_show is not None else None
        size = len(conversation.nodes) if conversation is not None else 0
        return model_html(self.backend, model_id, await sized(size, model_info.context_used, conversation))


def model_html(backend: Backend, model_id: str | None, used: tuple[int, bool] = (0, False)) -> str:
    """The model line's HTML: what the model can do, and `used` (tokens of context the chat takes, estimated?)."""
    try:
        info = backend.models.info(model_id or "")
    except SwitchboardError:
        return ""
    return model_info.describe(info, *used)


def retitled(title: str) -> Callable[[Conversation], None]:
    def retitle(conversation: Conversation) -> None:
        conversation.title = title

    return retitle

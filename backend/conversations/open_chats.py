"""The conversations pages show, held once in the process however many pages show them.

A page (a Gradio session) keeps only a `ShownChat` of the chat it shows: its id, the revision it read and the end
of the branch on show, a few dozen bytes. The conversation itself is read through `SharedConversations`: one copy
of the newest revision of each chat that pages show, shared by all of them, in a cache of at most MOST_BYTES (the
least recently used go first). When each session kept a copy of its own, opening one chat of 2,000 messages
(4.8 MB) in 40 sessions grew the app by 13.2 MB a session (the copy, and Gradio's of the Chatbot's value: see
webui/gradio_tuning.py); in 1,000 sessions, 13 GB.

A page's copy is the conversation at the revision it read. When that revision is no longer held (pushed out of the
cache, or changed since by another tab), the page's view is rebuilt from what is stored now, on the branch the page
showed and at the revision it read: messages are only ever added, so the page's branch means the same there, and a
change the page saves is checked against the revision it read (backend/store: another tab's change is merged, not
overwritten), as before.

Shared conversations are read, never changed: `Conversation.fork` gives a copy to change.
"""

from __future__ import annotations

import asyncio
import sys
from collections import OrderedDict
from dataclasses import dataclass

from .model import Conversation, ConversationError, StoredMessage
from .stores import ConversationStore

MOST_BYTES = 64 << 20  # about nine of the biggest imports (2,000 messages, 5 MB of text: 7 MB in memory each)
NODE_BYTES = 1000  # a message's own objects in memory, besides its text (measured: 999 bytes)

_Key = tuple[str, str]  # owner, conversation id


@dataclass(slots=True)
class _Held:
    conversation: Conversation
    size: int  # bytes, about
    writing: bool  # a reply was being written in it: its text grows in the store, its revision stays


@dataclass(frozen=True, slots=True)
class ShownChat:
    """What a page keeps of the conversation it shows: which one, the revision it read, the end of the branch on
    show (None: an empty chat)."""

    id: str
    revision: int
    leaf: int | None


class SharedConversations:
    """The newest revision pages showed of each conversation, one copy for all of them, bounded by bytes (see the
    module's note)."""

    def __init__(self, store: ConversationStore, most_bytes: int = MOST_BYTES) -> None:
        self.store = store
        self.most_bytes = most_bytes
        self._held: OrderedDict[_Key, _Held] = OrderedDict()
        self._bytes = 0
        self._reading: dict[tuple[str, str, int | None], asyncio.Future[Conversation]] = {}

    @property
    def held_bytes(self) -> int:
        """What the conversations held take, as estimated (at most `most_bytes`)."""
        return self._bytes

    def keep(self, owner: str, conversation: Conversation) -> ShownChat:
        """Hold `conversation` (a stored revision, shared from now on: nobody changes it any more) for the pages
        that show it, in place of an older revision of it; what a page keeps of it."""
        shown = ShownChat(conversation.id, conversation.revision, conversation.leaf)
        key = (owner, conversation.id)
        held = self._held.get(key)
        if held is not None and held.conversation.revision >= conversation.revision:
            if held.conversation.revision == conversation.revision:
                self._held.move_to_end(key)
            return shown  # (a page that shows an older one gets its view from the newer: see the module's note)
        if conversation.revision == 0:  # never saved: nothing another page could show
            return shown
        self._drop(key)
        size = sum(_message_size(message) for message in conversation.nodes)
        if size <= self.most_bytes // 4:  # a huge one is read again when needed rather than crowd out every other
            writing = any(message.status == "streaming" for message in conversation.nodes)
            self._held[key] = _Held(conversation, size, writing)
            self._bytes += size
            while self._bytes > self.most_bytes:
                self._drop(next(iter(self._held)))
        return shown

    async def view(self, owner: str, shown: ShownChat) -> Conversation | None:
        """The conversation as the page that keeps `shown` shows it (read it; `fork` it to change it); None when
        it no longer exists."""
        held = self._held.get((owner, shown.id))
        if held is not None and held.conversation.revision == shown.revision:
            self._held.move_to_end((owner, shown.id))
            return held.conversation
        try:
            now = await self.latest(owner, shown.id)
        except ConversationError:
            return None
        if now.revision == shown.revision or (shown.leaf is not None and not 0 <= shown.leaf < len(now.nodes)):
            return now
        return now.model_copy(update={"leaf": shown.leaf, "revision": shown.revision})

    async def latest(self, owner: str, conversation_id: str) -> Conversation:
        """The conversation as stored now (read it; `fork` it to change it), held for the pages that will show it.
        ConversationError when the owner has no such conversation. Asked by many pages at once, it is read once."""
        revision = await self.store.revision(owner, conversation_id)
        held = self._held.get((owner, conversation_id))
        if held is not None and held.conversation.revision == revision and not held.writing:
            self._held.move_to_end((owner, conversation_id))
            return held.conversation
        key = (owner, conversation_id, revision)
        reading = self._reading.get(key)
        if reading is None:
            reading = asyncio.ensure_future(self.store.get(owner, conversation_id))
            self._reading[key] = reading
            reading.add_done_callback(lambda done: self._read(key, done))
        conversation = await asyncio.shield(reading)
        self.keep(owner, conversation)
        return conversation

    def _read(self, key: tuple[str, str, int | None], done: asyncio.Future[Conversation]) -> None:
        self._reading.pop(key, None)
        if not done.cancelled():
            done.exception()  # (seen by those who waited, if any did: not to be reported as never retrieved)

    def _drop(self, key: _Key) -> None:
        held = self._held.pop(key, None)
        if held is not None:
            self._bytes -= held.size


def _message_size(message: StoredMessage) -> int:
    """About what a message takes in memory, in bytes."""
    documents = sum(sys.getsizeof(document.text) for document in message.documents)
    return NODE_BYTES + sys.getsizeof(message.text) + sys.getsizeof(message.reasoning) + documents

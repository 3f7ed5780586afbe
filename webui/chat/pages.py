"""What the Chat tab remembers of each page (a Gradio session) besides what Gradio keeps for it: which chat it
shows, what its search box holds, its time zone; and a lock per key for what must happen one at a time."""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator

import gradio as gr


class Turns:
    """One at a time per key: an asyncio.Lock for each key in use, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[object, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: object) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class Pages:
    """Which chat each page (Gradio session) shows, so a page following a reply stops when it opens another chat
    (the reply goes on; only that page's view of it ends), and what its search box holds, so the list a reply's
    end refreshes matches the box as it is then. The newest SESSIONS pages are remembered."""

    SESSIONS = 10_000

    def __init__(self) -> None:
        self._chats: OrderedDict[str, str] = OrderedDict()
        self._queries: dict[str, str] = {}
        self._zones: dict[str, int] = {}

    def chat(self, request: gr.Request | None, conversation_id: str) -> None:
        session = getattr(request, "session_hash", None)
        if session:
            self._chats[session] = conversation_id
            self._chats.move_to_end(session)
            while len(self._chats) > self.SESSIONS:
                self._chats.popitem(last=False)

    def search(self, request: gr.Request | None, query: str) -> None:
        session = getattr(request, "session_hash", None)
        if session:
            self._queries[session] = query or ""
            while len(self._queries) > self.SESSIONS:
                self._queries.pop(next(iter(self._queries)))

    def zone(self, request: gr.Request | None, offset_minutes: float | None) -> None:
        """The page's time zone (JavaScript's getTimezoneOffset: minutes behind UTC), as it said when it loaded."""
        session = getattr(request, "session_hash", None)
        if session and isinstance(offset_minutes, int | float) and abs(offset_minutes) <= 24 * 60:
            self._zones[session] = int(offset_minutes)
            while len(self._zones) > self.SESSIONS:
                self._zones.pop(next(iter(self._zones)))

    def offset(self, request: gr.Request | None) -> int:
        return self._zones.get(getattr(request, "session_hash", None) or "", 0)

    def query(self, request: gr.Request | None, default: str) -> str:
        """What the page's search box holds now (as its last search said), else `default`."""
        return self._queries.get(getattr(request, "session_hash", None) or "", default)

    def still(self, request: gr.Request | None, conversation_id: str) -> bool:
        """Whether the page still shows that chat (a page not seen yet shows what it asked to follow)."""
        session = getattr(request, "session_hash", None)
        return self._chats.get(session or "", conversation_id) == conversation_id

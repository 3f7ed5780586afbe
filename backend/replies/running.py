"""A reply being generated here (`RunningReply`), and what a page needs of any reply it follows, here or on another
replica (`FollowableReply`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from ..conversations.model import StoredMessage
from ..events import StreamEvent
from .record import ReplyRecord


class FollowableReply(Protocol):
    """A reply a page follows: where it is (`owner`, `conversation_id`, `position`), what it was asked of
    (`requested`), its events in lists (`batches`), the stored message once it ended (`wait`), and `stop`. Met by
    RunningReply and by another replica's reply (backend/replicas/relay.py: RemoteReply)."""

    owner: str
    conversation_id: str
    position: int

    @property
    def requested(self) -> str: ...
    def batches(self, pause: Callable[[], float]) -> AsyncIterator[list[StreamEvent]]: ...
    async def wait(self) -> StoredMessage: ...
    def stop(self, status: str = "stopped") -> None: ...


class RunningReply:
    """One reply being generated: its events so far (for pages that join late) and, once it ended, the stored
    message (`result`)."""

    def __init__(self, owner: str, conversation_id: str, position: int, requested_model: str) -> None:
        self.owner = owner
        self.conversation_id = conversation_id
        self.position = position
        self.record = ReplyRecord(requested_model)
        self.events: list[StreamEvent] = []
        self.result: StoredMessage | None = None
        self.stopping: str | None = None  # "stopped" (Stop) or "interrupted" (the app shutting down)
        self._changed = asyncio.Event()
        self._ended = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._generation: asyncio.Task[None] | None = None

    @property
    def done(self) -> bool:
        return self._ended.is_set()

    @property
    def requested(self) -> str:
        """The model or route the reply was asked of."""
        return self.record.requested

    async def follow(self) -> AsyncIterator[StreamEvent]:
        """Every event of the reply from its first, then live ones as they come, until it ends. Closing this
        iterator only stops following."""
        async for batch in self.batches(lambda: 0.0):
            for event in batch:
                yield event

    async def batches(self, pause: Callable[[], float]) -> AsyncIterator[list[StreamEvent]]:
        """`follow` in lists: everything that arrived since the last list, the first list at once, then at most
        one every `pause()` seconds. A follower then wakes once per list, not once per token: with ten replies
        streaming, per-token wake-ups of every page cost the server more than reading the upstreams."""
        seen = 0
        while True:
            if seen < len(self.events):
                batch = self.events[seen:]
                seen += len(batch)
                yield batch
                if interval := pause():
                    await asyncio.sleep(interval)
                continue
            if self.done:
                return
            await self._changed.wait()

    async def wait(self) -> StoredMessage:
        """The reply as stored when it ended."""
        await self._ended.wait()
        assert self.result is not None
        return self.result

    def stop(self, status: str = "stopped") -> None:
        """End the reply now (the upstream is closed); what arrived is kept, marked `status` ("stopped", or
        "interrupted" when the app shuts down)."""
        self.stopping = status
        if self._generation is not None and not self._generation.done():
            self._generation.cancel()

    def _publish(self, event: StreamEvent) -> None:
        self.events.append(event)
        # Wakes every follower waiting now (set resolves their waits; clearing at once does not undo that), with
        # no new object per token.
        self._changed.set()
        self._changed.clear()

    def _end(self, result: StoredMessage) -> None:
        self.result = result
        self._ended.set()
        self._changed.set()

"""Replies generated on the server: each a task that runs to its end whether or not a page is watching.

A page that sends a message starts a reply (`Replies.start`) and then *follows* it; a page opened or reloaded
while it runs follows it too, from its first event (so it shows the text so far at once, then the live stream:
the same events, in the same order, as a page that watched from the start). Closing pages never ends a reply; Stop
(from any page of the chat's owner) does, and closes the upstream. The reply is written to the conversation store
as it streams, at most `checkpoint_seconds` apart, and once more when it ends with its provenance, reasoning,
handovers and timings; a process killed mid-reply leaves it with the text of its last checkpoint, marked
interrupted at the next start (backend/store/conversations.py: `interrupt_replies`).

Everything here runs on the event loop of the server; a reply belongs to the process that started it. With
several processes (replicas) sharing the store and Redis, `find` also reaches a reply another replica generates,
which a page then follows, and stops, the same way (backend/replicas/relay.py, handed in by backend/app.py as a
`ReplyMirror`: nothing here imports the services or Redis).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, Protocol, TypeVar

from ..conversations.model import INTERRUPTED, Conversation, ReplyPart
from ..conversations.stores import ConversationStore
from ..errors import SwitchboardError
from ..events import StreamEvent
from ..request import ChatRequest
from .running import FollowableReply, RunningReply

log = logging.getLogger(__name__)

CHECKPOINT_SECONDS = 1.0

RemoteT = TypeVar("RemoteT", bound=FollowableReply)
_Found = TypeVar("_Found", bound=FollowableReply, covariant=True)


class ReplyGenerator(Protocol):
    """What writes replies: the chat service (backend/services/chat.py)."""

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]: ...
    async def suggest_title(self, model: str, question: str, answer: str) -> str: ...


class ReplyMirror(Protocol[_Found]):
    """Where the replies generated here are shown to other replicas, and theirs are found (`_Found`); Stop and the
    sweep for replies whose replica died run from `start` (backend/replicas/relay.py)."""

    async def start(self, local: Callable[[str, str], RunningReply | None]) -> None: ...
    def mirror(self, reply: RunningReply) -> None: ...
    async def find(self, owner: str, conversation_id: str) -> _Found | None: ...
    async def aclose(self) -> None: ...


class Replies(Generic[RemoteT]):
    """The replies this process is generating, by (owner, conversation); with replicas (`relay`), also those
    another replica generates (`RemoteT`)."""

    def __init__(
        self,
        chat: ReplyGenerator,
        store: ConversationStore,
        *,
        title_model: str | None = None,
        checkpoint_seconds: float = CHECKPOINT_SECONDS,
        relay: ReplyMirror[RemoteT] | None = None,
    ) -> None:
        self.chat = chat
        self.store = store
        self.title_model = title_model
        self.checkpoint_seconds = checkpoint_seconds
        self.relay = relay
        self._running: dict[tuple[str, str], RunningReply] = {}

    async def start_relay(self) -> None:
        """With replicas: listen for Stop from the others and sweep for replies of replicas that died (on the
        server's event loop, when it starts)."""
        if self.relay is not None:
            await self.relay.start(self.running)

    def active(self) -> list[RunningReply]:
        """Every reply being generated now."""
        return list(self._running.values())

    def running(self, owner: str, conversation_id: str) -> RunningReply | None:
        """The reply this process is generating in that conversation of `owner`'s, if any."""
        return self._running.get((owner, conversation_id))

    async def find(self, owner: str, conversation_id: str) -> RunningReply | RemoteT | None:
        """The reply being generated in that conversation of `owner`'s, here or (with replicas) by another."""
        local = self._running.get((owner, conversation_id))
        if local is not None or self.relay is None:
            return local
        return await self.relay.find(owner, conversation_id)

    def start(
        self,
        owner: str,
        conversation: Conversation,
        request: ChatRequest,
        release: Callable[[], Awaitable[object]] | None = None,
    ) -> RunningReply:
        """Generate the reply the conversation's visible branch ends with (saved as `streaming`, empty) for
        `request`; `release` is called when it ended (a per-visitor slot the caller took, given back)."""
        position = conversation.leaf
        if position is None or conversation.nodes[position].status != "streaming":
            raise ValueError("the conversation must end with a streaming reply, saved")
        key = (owner, conversation.id)
        if key in self._running:
            raise SwitchboardError("A reply is already being written in this chat; wait for it or stop it.")
        reply = RunningReply(owner, conversation.id, position, request.model)
        held = contextlib.AsyncExitStack()
        if release is not None:
            held.push_async_callback(release)
        first_exchange = len(conversation.messages) == 2
        question = conversation.messages[-2].text if len(conversation.messages) >= 2 else ""
        self._running[key] = reply
        reply._task = asyncio.create_task(self._run(reply, request, held, question if first_exchange else None))
        if self.relay is not None:
            self.relay.mirror(reply)
        return reply

    async def aclose(self) -> None:
        """Stop every reply, marked interrupted, and wait for each to be written (a server shutting down)."""
        for reply in list(self._running.values()):
            reply.stop("interrupted")
        await asyncio.gather(*(r._task for r in list(self._running.values()) if r._task), return_exceptions=True)
        if self.relay is not None:
            await self.relay.aclose()

    async def _run(
        self, reply: RunningReply, request: ChatRequest, held: contextlib.AsyncExitStack, question: str | None
    ) -> None:
        status = "complete"
        async with held:
            reply._generation = asyncio.create_task(self._generate(reply, request))
            try:
                await reply._generation
            except asyncio.CancelledError:
                if not reply.stopping:  # this task itself was cancelled: the server is going away
                    raise
                status = reply.stopping
            except SwitchboardError as error:
                reply.record.fail(error)
            except Exception as error:  # a bug of ours must not leave the reply "running"
                log.exception("reply failed")
                reply.record.fail(SwitchboardError(f"internal error ({type(error).__name__}); see the server log"))
        reply.record.close()
        result = reply.record.to_stored(status)
        if status == "interrupted":
            result.error = INTERRUPTED
        try:
            await self.store.finish_reply(reply.owner, reply.conversation_id, reply.position, result)
            if question is not None and result.status == "complete":
                await self._name(reply, question, result.text)
        except Exception:
            log.exception("could not store a finished reply")
        finally:
            self._running.pop((reply.owner, reply.conversation_id), None)
            reply._end(result)

    async def _generate(self, reply: RunningReply, request: ChatRequest) -> None:
        """Stream the upstream's events to followers, writing a checkpoint at most every `checkpoint_seconds`."""
        record = reply.record
        # What the last checkpoint wrote: pieces of text and of reasoning (so a checkpoint joins only the new ones),
        # and who was answering.
        seq, text_pieces, reasoning_pieces = 0, 0, 0
        provenance = (record.answering, len(record.handovers))
        due = time.monotonic() + self.checkpoint_seconds
        async for event in self.chat.stream(request):
            record.apply(event)
            reply._publish(event)
            if time.monotonic() < due:
                continue
            changed = (record.answering, len(record.handovers)) != provenance
            if len(record.text) > text_pieces or len(record.reasoning) > reasoning_pieces or changed:
                part = ReplyPart("".join(record.text[text_pieces:]), "".join(record.reasoning[reasoning_pieces:]))
                details = record.to_stored() if changed else None
                await self.store.checkpoint(reply.owner, reply.conversation_id, reply.position, seq, part, details)
                seq, text_pieces, reasoning_pieces = seq + 1, len(record.text), len(record.reasoning)
                provenance = (record.answering, len(record.handovers))
            due = time.monotonic() + self.checkpoint_seconds

    async def _name(self, reply: RunningReply, question: str, answer: str) -> None:
        """After a chat's first exchange, let the configured title model name it (unless it was renamed)."""
        if not self.title_model:
            return
        title = await self.chat.suggest_title(self.title_model, question, answer)
        if not title:
            return
        for _ in range(3):  # another tab may save in between: read again, rename again
            conversation = await self.store.get(reply.owner, reply.conversation_id)
            automatic = Conversation(nodes=conversation.nodes, leaf=conversation.leaf)
            automatic.auto_title()
            if conversation.title != automatic.title:
                return
            conversation.title = title
            with contextlib.suppress(SwitchboardError):
                await self.store.save(reply.owner, conversation)
                return

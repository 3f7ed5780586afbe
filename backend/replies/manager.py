"""Replies generated on the server: each a task that runs to its end whether or not a page is watching.

A page that sends a message starts a reply (`Replies.start`) and then *follows* it; a page opened or reloaded
while it runs follows it too, from its first event (so it shows the text so far at once, then the live stream:
the same events, in the same order, as a page that watched from the start). Closing pages never ends a reply; Stop
(from any page of the chat's owner) does, and closes the upstream. The reply is written to the conversation store
as it streams, at most `checkpoint_seconds` apart, and once more when it ends with its provenance, reasoning,
handovers and timings; a process killed mid-reply leaves it with the text of its last checkpoint, marked
interrupted at the next start (`SQLConversationStore.interrupt_replies`).

Everything here runs on the event loop of the server; a reply belongs to the process that started it. With
several processes (replicas) sharing the store and Redis, `find` also reaches a reply another replica generates,
which a page then follows, and stops, the same way (backend/relay.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from ..conversations.model import Conversation, Handover, ReplyPart, StoredMessage
from ..conversations.stores import ConversationStore
from ..errors import SwitchboardError
from ..events import Finish, ReasoningDelta, Resumed, Started, StreamEvent, TextDelta, ToolCallDelta, Usage
from ..request import ChatRequest

if TYPE_CHECKING:
    from ..replicas.relay import Relay, RemoteReply
    from ..services import ChatService

log = logging.getLogger(__name__)

CHECKPOINT_SECONDS = 1.0
INTERRUPTED = "The app stopped while this reply was being written; this is what had arrived."


class ReplyRecord:
    """A reply as its events build it: answer, reasoning, tool calls, who answered and who took over, usage,
    timings; `to_stored` makes the conversation's message of it."""

    def __init__(self, requested_model: str) -> None:
        self.requested = requested_model
        self.answering: str | None = None
        self.reasoning: list[str] = []
        self.text: list[str] = []
        self.tool_calls: dict[int, dict[str, str]] = {}
        self.handovers: list[Handover] = []
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.error: SwitchboardError | None = None
        self.error_text: str | None = None
        self.started_at = time.monotonic()
        self.first_token_at: float | None = None
        self.ended_at: float | None = None
        self.deltas = 0

    def apply(self, event: StreamEvent) -> None:
        if isinstance(event, (TextDelta, ReasoningDelta)):  # first: nearly every event is one
            if self.first_token_at is None:
                self.first_token_at = time.monotonic()
            self.deltas += 1
            (self.text if isinstance(event, TextDelta) else self.reasoning).append(event.text)
        elif isinstance(event, ToolCallDelta):
            call = self.tool_calls.setdefault(event.call_index, {"name": "", "arguments": ""})
            call["name"] = call["name"] or event.name or ""
            call["arguments"] += event.arguments
        elif isinstance(event, Started):
            self.answering = f"{event.provider}/{event.model}"
        elif isinstance(event, Resumed):
            at = sum(map(len, self.text))
            self.handovers.append(Handover(at=at, provider=event.provider, model=event.model, reason=event.reason))
        elif isinstance(event, Usage):
            self.usage = event
        elif isinstance(event, Finish):
            self.finish_reason = event.reason

    def fail(self, error: SwitchboardError) -> None:
        self.error = error
        self.error_text = error.user_message()

    def close(self) -> None:
        self.ended_at = time.monotonic()

    def answer(self) -> str:
        return "".join(self.text) + self._tool_calls_markdown()

    def to_stored(self, status: str = "complete") -> StoredMessage:
        """This reply for the conversation store, with where it came from and how fast."""
        provider, _, model = (self.answering or self.requested).partition("/")
        return StoredMessage.model_validate(
            {
                "handovers": self.handovers,
                "role": "assistant",
                "text": self.answer(),
                "reasoning": "".join(self.reasoning),
                "provider": provider or None,
                "model": model or None,
                "first_token_seconds": None if self.first_token_at is None else self.first_token_at - self.started_at,
                "seconds": None if self.ended_at is None else self.ended_at - self.started_at,
                "prompt_tokens": self.usage.prompt_tokens if self.usage else None,
                "completion_tokens": self.usage.completion_tokens if self.usage else None,
                "status": "failed" if self.error_text else status,
                "error": self.error_text,
            }
        )

    def _tool_calls_markdown(self) -> str:
        if not self.tool_calls:
            return ""
        calls = [f"`{c['name']}({c['arguments']})`" for _, c in sorted(self.tool_calls.items())]
        return "\n\nTool calls requested: " + ", ".join(calls)


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


class Replies:
    """The replies this process is generating, by (owner, conversation)."""

    def __init__(
        self,
        chat: ChatService,
        store: ConversationStore,
        *,
        title_model: str | None = None,
        checkpoint_seconds: float = CHECKPOINT_SECONDS,
        relay: Relay | None = None,
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

    async def find(self, owner: str, conversation_id: str) -> RunningReply | RemoteReply | None:
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

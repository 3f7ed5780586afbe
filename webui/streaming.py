"""Coalesce a fast event stream into a few UI updates per second.

Every Gradio yield costs a server-side diff and postprocess of the whole value, so yielding per token makes long
replies slow. `batched` reads the stream in a background task and hands over whatever arrived, at most once per
`interval` seconds: the first event at once (time to first token matters), then batches; a lull flushes at once.

How often is up to a `Pacer`, shared by every reply of the app: each Gradio update costs the server about a
quarter of a millisecond (its processing, the diff, one more SSE message written to a socket) however little
it carries. With few replies streaming, each updates every `interval` (40 ms: smooth); with many, the updates
per second of all of them together stay near a budget, so fifty replies at once do not spend the server's
whole core on updates (each then updates about every quarter second, still as a stream).

A reply in a long chat updates less often still: each update sends the whole chat, as the page shows it, through
Gradio's processing on the event loop (about 45 µs a message shown; at 2,000 messages, 90 ms an update, which every
40 ms would take the loop whole). A reply updates at most every UPDATE_SECONDS_PER_MESSAGE for each message shown
(four times that cost): one long chat's reply takes at most a quarter of the loop, and a chat of up to ~200 messages
is not slowed at all.

The reader also yields to the event loop every FAIR_SHARE events. One network read can hold hundreds of events
(an upstream that sends in bulk, or a burst after a stall) and parsing them never waits on I/O: with a hundred
replies streaming, one event-loop turn took most of a second, and every visitor's updates waited behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TypeVar

from backend import RemoteReply, RunningReply, StreamEvent

T = TypeVar("T")

FAIR_SHARE = 32
UPDATE_SECONDS_PER_MESSAGE = 0.000_18


class Pacer:
    """How long each streaming reply waits between two UI updates: `interval`, or longer when `budget` updates a
    second shared by all the replies streaming now would otherwise be exceeded."""

    def __init__(self, interval: float, budget: float) -> None:
        self.base = interval
        self.budget = budget
        self.streaming = 0

    def interval(self) -> float:
        return max(self.base, self.streaming / self.budget)


async def batched(events: AsyncIterator[T], pacer: Pacer) -> AsyncIterator[list[T]]:
    """Yield lists of events, at most one list per `pacer.interval()`; errors from `events` are raised after the
    events before them. Closing or cancelling this generator cancels the reader, which closes `events` (and the
    upstream response)."""
    pending: list[T] = []
    arrived = asyncio.Event()
    failure: list[BaseException] = []

    async def read() -> None:
        share = FAIR_SHARE
        try:
            async for event in events:
                pending.append(event)
                arrived.set()
                share -= 1
                if not share:
                    share = FAIR_SHARE
                    await asyncio.sleep(0)
        except Exception as exc:  # handed to the consumer below
            failure.append(exc)
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()
            arrived.set()

    reader = asyncio.create_task(read())
    pacer.streaming += 1
    try:
        while True:
            await arrived.wait()
            arrived.clear()
            if pending:
                batch = pending[:]
                pending.clear()
                yield batch
            if reader.done() and not pending:
                break
            if interval := pacer.interval():
                await asyncio.sleep(interval)
        if failure:
            raise failure[0]
    finally:
        pacer.streaming -= 1
        if not reader.done():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


async def paced(reply: RunningReply | RemoteReply, pacer: Pacer, shown: int = 0) -> AsyncIterator[list[StreamEvent]]:
    """A reply being generated on the server (here, or on another replica), from its first event, in lists at the
    pacer's rate, or slower in a chat whose page shows `shown` messages besides it (see the module's note; `batched`
    for a reply's own event log: no reader task, and no wake-up per token)."""
    least = shown * UPDATE_SECONDS_PER_MESSAGE
    pacer.streaming += 1
    try:
        async for batch in reply.batches(lambda: max(pacer.interval(), least)):
            yield batch
    finally:
        pacer.streaming -= 1

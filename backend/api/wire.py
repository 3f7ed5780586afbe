"""The OpenAI wire format our stream events are read in, by the Python client and the HTTP API alike: completion
chunks as a reply streams (`completion_chunks`), or the whole completion once it ended (`collect`)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Literal

from ..events import Finish, ReasoningDelta, Resumed, Started, StreamEvent, TextDelta, ToolCallDelta, Usage
from .types import ChatCompletion as ChatCompletionObject
from .types import (
    ChatCompletionChunk,
    ChatCompletionMessage,
    Choice,
    ChoiceDelta,
    ChoiceDeltaFunctionCall,
    ChoiceDeltaToolCall,
    ChunkChoice,
    CompletionUsage,
    FunctionCall,
    ToolCall,
)


def _usage(event: Usage) -> CompletionUsage:
    return CompletionUsage(
        prompt_tokens=event.prompt_tokens, completion_tokens=event.completion_tokens, total_tokens=event.total_tokens
    )


async def completion_chunks(
    events: AsyncIterator[StreamEvent], model: str
) -> AsyncGenerator[ChatCompletionChunk, None]:
    """Events to OpenAI chunks. Finish chunks are held to the end so usage rides on the last one, and no chunk
    has empty `choices` (code that reads `chunk.choices[0]` on every chunk keeps working)."""
    chunk_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    provider: str | None = None
    first: set[int] = set()
    finishing: list[ChatCompletionChunk] = []
    usage: CompletionUsage | None = None

    def chunk(index: int, delta: ChoiceDelta, finish_reason: str | None = None) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=chunk_id,
            created=created,
            model=model,
            provider=provider,
            choices=[ChunkChoice(index=index, delta=delta, finish_reason=finish_reason)],
        )

    def role(index: int) -> Literal["assistant"] | None:
        if index in first:
            return None
        first.add(index)
        return "assistant"

    async with _closing(events):
        async for event in events:
            # Per token: an exact type test and a chunk built positionally, inline (ChoiceDelta(role, content)).
            if type(event) is TextDelta:
                index = event.index
                delta = ChoiceDelta(None if index in first else role(index), event.text)
                yield ChatCompletionChunk(chunk_id, created, model, [ChunkChoice(index, delta)], provider)
                continue
            match event:
                case ReasoningDelta():
                    yield chunk(event.index, ChoiceDelta(role=role(event.index), reasoning_content=event.text))
                case ToolCallDelta():
                    call = ChoiceDeltaToolCall(
                        index=event.call_index,
                        id=event.id,
                        function=ChoiceDeltaFunctionCall(name=event.name, arguments=event.arguments),
                    )
                    yield chunk(event.index, ChoiceDelta(role=role(event.index), tool_calls=[call]))
                case Finish():
                    finishing.append(chunk(event.index, ChoiceDelta(), event.reason))
                case Usage():
                    usage = _usage(event)
                case Started() | Resumed():  # Resumed: another provider continues the answer
                    provider, model = event.provider, f"{event.provider}/{event.model}"
    if usage is not None:
        if not finishing:
            finishing.append(chunk(0, ChoiceDelta(), None))
        finishing[-1].usage = usage
    for final in finishing:
        yield final


class _closing:
    """`async with` that closes an async generator however the block ends (aclosing, tolerant of plain iterators)."""

    def __init__(self, events: AsyncIterator[StreamEvent]) -> None:
        self.events = events

    async def __aenter__(self) -> AsyncIterator[StreamEvent]:
        return self.events

    async def __aexit__(self, *exc_info: object) -> None:
        close = getattr(self.events, "aclose", None)
        if close is not None:
            await close()


async def collect(events: AsyncIterator[StreamEvent], model: str) -> ChatCompletionObject:
    """Run a stream to its end and build the non-streamed completion object."""
    texts: dict[int, list[str]] = {}
    reasoning: dict[int, list[str]] = {}
    calls: dict[int, dict[int, ToolCall]] = {}
    reasons: dict[int, str] = {}
    usage: CompletionUsage | None = None
    provider: str | None = None
    async with _closing(events):
        async for event in events:
            match event:
                case TextDelta():
                    texts.setdefault(event.index, []).append(event.text)
                case ReasoningDelta():
                    reasoning.setdefault(event.index, []).append(event.text)
                case ToolCallDelta():
                    call = calls.setdefault(event.index, {}).setdefault(
                        event.call_index, ToolCall(id=event.id, function=FunctionCall(name=event.name))
                    )
                    call.id = call.id or event.id
                    call.function.name = call.function.name or event.name
                    call.function.arguments += event.arguments
                case Finish():
                    reasons[event.index] = event.reason
                case Usage():
                    usage = _usage(event)
                case Started() | Resumed():  # Resumed: another provider continues the answer
                    provider, model = event.provider, f"{event.provider}/{event.model}"
    indexes = sorted(set(texts) | set(reasoning) | set(calls) | set(reasons)) or [0]
    choices = [
        Choice(
            index=index,
            message=ChatCompletionMessage(
                content="".join(texts.get(index, [])) if index in texts or index not in calls else None,
                reasoning_content="".join(reasoning[index]) if index in reasoning else None,
                tool_calls=[calls[index][i] for i in sorted(calls[index])] if index in calls else None,
            ),
            finish_reason=reasons.get(index, "stop"),
        )
        for index in indexes
    ]
    return ChatCompletionObject(
        id=f"chatcmpl-{uuid.uuid4().hex[:24]}",
        created=int(time.time()),
        model=model,
        provider=provider,
        choices=choices,
        usage=usage,
    )

"""The typed-SDK dialect (seed 003): `client.chat.create(request={...})` and `client.chat.stream(request={...})`.

    s = Client(api_key_auth=os.getenv("API_KEY_AUTH", ""), server_url="https://llm.example/v1")
    res = s.chat.create(request={"model": "small", "messages": [...], "random_seed": 1337})
    for event in s.chat.stream(request={"model": "small", "messages": [...]}):
        print(event.data.choices[0].delta.content or "", end="")

The request is a dict or keyword arguments with the fields `chat.completions.create` takes; `random_seed` is
`seed`, and any other field (`safe_prompt`, `presence_penalty`...) goes to the upstream as it is, as the SDK sends
its request body. `create` returns the same `ChatCompletion` object; `stream` yields `ChatCompletionEvent`s whose
`data` is a `ChatCompletionChunk`, and raises an upstream's refusal at the call, as the SDK does, since it reads the
status before handing back the stream. On `AsyncClient` both are coroutines; `create_async` and `stream_async` are
the SDK's names for those on either client. The errors' names are aliases in backend/errors.py; this module is
also `backend.models`, the namespace the SDK's documentation names them in (`except models.TooManyRequests`).
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterable, AsyncIterator, Coroutine, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol, TypedDict, TypeVar

from ..api.types import ChatCompletionChunk
from ..errors import (
    BadRequest,
    Forbidden,
    InternalServerError,
    NotFound,
    SDKError,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
)
from ..request import Message
from .in_code import InCode
from .params import CREATE_FIELDS

T = TypeVar("T")


class ChatCompletionRole(enum.StrEnum):
    """A message's role, as the typed SDK spells it (`ChatCompletionRole.USER`); each is its plain string too."""

    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"
    TOOL = "tool"


class ChatCompletionRequest(TypedDict, total=False):
    """The fields of `chat.create` and `chat.stream` (as a `request` dict or as keyword arguments). Fields not named
    here are sent to the upstream as they are."""

    model: str
    messages: list[Message]
    temperature: float
    top_p: float
    max_tokens: int
    n: int
    random_seed: int
    seed: int
    stop: str | list[str]
    response_format: dict[str, Any]
    tools: list[dict[str, Any]]
    tool_choice: str | dict[str, Any]
    timeout: float
    stream: bool


def create_arguments(request: ChatCompletionRequest | None, fields: dict[str, Any], *, stream: bool) -> dict[str, Any]:
    """The keyword arguments of `chat.completions.create` for a typed-SDK request (without `stream`)."""
    given: dict[str, Any] = {**(request or {}), **fields}
    if given.pop("stream", stream) != stream:
        operation = "chat.stream" if stream else "chat.create"
        raise ValueError(f"{operation} was given stream={not stream}: use chat.{'create' if stream else 'stream'}")
    if "random_seed" in given:
        if "seed" in given:
            raise ValueError("pass random_seed or seed, not both")
        given["seed"] = given.pop("random_seed")
    if "messages" in given and not isinstance(given["messages"], str):
        given["messages"] = [_plain_role(message) for message in given["messages"]]
    arguments = {name: value for name, value in given.items() if name in CREATE_FIELDS}
    extra = {name: value for name, value in given.items() if name not in CREATE_FIELDS}
    if extra:
        arguments["extra_body"] = {**arguments.get("extra_body", {}), **extra}
    return arguments


def _plain_role(message: Message) -> Message:
    """The message with a `ChatCompletionRole` as its plain string, so logs and errors show "user"."""
    role = message.get("role")
    return {**message, "role": role.value} if isinstance(role, enum.Enum) else message


class ClientOptions(InCode, total=False):
    """`Client`'s and `AsyncClient`'s providers in code, with the typed SDK's names for two of them."""

    api_key_auth: str | None  # = api_key
    server_url: str | None  # = base_url: the URL before /chat/completions (…/v1)


def in_code(options: ClientOptions) -> InCode:
    """The options by our names (`api_key_auth` is `api_key`, `server_url` is `base_url`)."""
    given = dict(options)
    for sdk_name, ours in (("api_key_auth", "api_key"), ("server_url", "base_url")):
        if sdk_name in given:
            value = given.pop(sdk_name)
            if given.get(ours) not in (None, value):
                raise ValueError(f"pass {sdk_name} or {ours}, not both")
            given[ours] = given.get(ours) or value
    options_in_code: InCode = {**given}  # type: ignore[typeddict-item]  # only InCode's keys remain
    return options_in_code


@dataclass(slots=True)
class ChatCompletionEvent:
    """One event of `chat.stream`: `data` is the chunk (`event.data.choices[0].delta.content`)."""

    data: ChatCompletionChunk


class EventStream:
    """`chat.stream`'s events: iterate it, or use it in `with` (leaving it closes the upstream connection)."""

    def __init__(self, chunks: Iterator[ChatCompletionChunk]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[ChatCompletionEvent]:
        return self

    def __next__(self) -> ChatCompletionEvent:
        return ChatCompletionEvent(next(self._chunks))

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncEventStream:
    """The async `chat.stream`'s events: `async for`, or `async with` (leaving it closes the upstream connection)."""

    def __init__(self, chunks: AsyncIterator[ChatCompletionChunk]) -> None:
        self._chunks = chunks

    def __aiter__(self) -> AsyncEventStream:
        return self

    async def __anext__(self) -> ChatCompletionEvent:
        return ChatCompletionEvent(await anext(self._chunks))

    async def aclose(self) -> None:
        close = getattr(self._chunks, "aclose", None)
        if close is not None:
            await close()

    async def __aenter__(self) -> AsyncEventStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


async def read_first(chunks: AsyncIterable[ChatCompletionChunk]) -> AsyncIterator[ChatCompletionChunk]:
    """`chunks` with its first chunk already read, so an upstream error is raised by the caller's await."""
    iterator = aiter(chunks)
    return _replay(await anext(iterator, None), iterator)


async def _replay(
    first: ChatCompletionChunk | None, rest: AsyncIterator[ChatCompletionChunk]
) -> AsyncIterator[ChatCompletionChunk]:
    try:
        if first is not None:
            yield first
            async for chunk in rest:
                yield chunk
    finally:
        close = getattr(rest, "aclose", None)
        if close is not None:
            await close()


class Runs(Protocol):
    """The synchronous client's event loop: coroutines submitted to it run there."""

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> Future[T]: ...


def prepended(first: ChatCompletionChunk, rest: Iterator[ChatCompletionChunk]) -> Iterator[ChatCompletionChunk]:
    try:
        yield first
        yield from rest
    finally:
        close = getattr(rest, "close", None)
        if close is not None:
            close()


async def from_loop(events: AsyncEventStream, runner: Runs) -> AsyncIterator[ChatCompletionChunk]:
    """The chunks of a stream that lives on the client's loop, awaited from the caller's."""

    async def following() -> ChatCompletionChunk:
        return (await anext(events)).data

    try:
        while True:
            try:
                yield await asyncio.wrap_future(runner.submit(following()))
            except StopAsyncIteration:
                return
    finally:
        await asyncio.wrap_future(runner.submit(events.aclose()))


__all__ = [
    "AsyncEventStream",
    "BadRequest",
    "ChatCompletionEvent",
    "ChatCompletionRequest",
    "ChatCompletionRole",
    "EventStream",
    "Forbidden",
    "InternalServerError",
    "NotFound",
    "SDKError",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthorized",
]

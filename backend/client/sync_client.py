"""`Client`: the same API as `AsyncClient`, synchronous. It runs an `AsyncClient` on an event loop of its own in a
background thread, so it also works where a loop is already running (Jupyter, a Gradio handler)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Iterator, Sequence
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Literal, TypeVar, Unpack, overload

from ..api.types import ChatCompletion as ChatCompletionObject
from ..api.types import ChatCompletionChunk, ImagesResponse
from ..config import Settings
from ..request import Message
from .async_client import AsyncChat, AsyncClient, AsyncCompletions, AsyncImages, AsyncStream
from .params import CreateParams
from .typed_sdk import (
    AsyncEventStream,
    ChatCompletionRequest,
    ClientOptions,
    EventStream,
    create_arguments,
    from_loop,
    prepended,
)

T = TypeVar("T")


class _LoopThread:
    """An event loop running in a daemon thread, for the synchronous API."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="switchboard-client", daemon=True)
        self._thread.start()

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        future = self.submit(coroutine)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def stop(self) -> None:
        """Stop the loop once the async generators it still holds are closed: a stream abandoned mid-way (a
        failover, a `break`) is then finalised on its own loop, not after the loop is gone."""
        with contextlib.suppress(Exception):
            self.run(self.loop.shutdown_asyncgens())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)


class Completions:
    def __init__(self, runner: _LoopThread, completions: AsyncCompletions) -> None:
        self._runner = runner
        self._async = completions

    @overload
    def create(
        self,
        model: str | None = None,
        *,
        messages: str | Sequence[Message],
        stream: Literal[False] = False,
        **params: Unpack[CreateParams],
    ) -> ChatCompletionObject: ...

    @overload
    def create(
        self,
        model: str | None = None,
        *,
        messages: str | Sequence[Message],
        stream: Literal[True],
        **params: Unpack[CreateParams],
    ) -> Iterator[ChatCompletionChunk]: ...

    @overload
    def create(
        self,
        model: str | None = None,
        *,
        messages: str | Sequence[Message],
        stream: bool,
        **params: Unpack[CreateParams],
    ) -> ChatCompletionObject | Iterator[ChatCompletionChunk]: ...

    def create(
        self,
        model: str | None = None,
        *,
        messages: str | Sequence[Message],
        stream: bool = False,
        **params: Unpack[CreateParams],
    ) -> ChatCompletionObject | Iterator[ChatCompletionChunk]:
        """Like `AsyncCompletions.create`, synchronous: a `ChatCompletion`, or an iterator of chunks."""
        if not stream:

            async def complete() -> ChatCompletionObject:
                completion: ChatCompletionObject = await self._async.create(
                    model, messages=messages, stream=False, **params
                )
                return completion

            return self._runner.run(complete())

        async def start() -> AsyncStream:
            chunks: AsyncStream = self._async.create(model, messages=messages, stream=True, **params)
            return chunks

        return self._iterate(self._runner.run(start()))

    def _iterate(self, stream: AsyncStream) -> Iterator[ChatCompletionChunk]:
        try:
            while True:
                try:
                    yield self._runner.run(stream.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            self._runner.run(stream.aclose())


class Client:
    """The synchronous twin of `AsyncClient`; call `close()` (or use `with`) when done."""

    def __init__(
        self, config: str | None = None, *, settings: Settings | None = None, **options: Unpack[ClientOptions]
    ) -> None:
        self._runner = _LoopThread()
        self._async = AsyncClient(config, settings=settings, **options)
        self.backend = self._async.backend
        self.chat = Chat(Completions(self._runner, self._async.chat.completions), self._async.chat, self._runner)
        self.images = Images(self._runner, self._async.images)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on this client's event loop and return its result."""
        return self._runner.run(coroutine)

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> Future[T]:
        return self._runner.submit(coroutine)

    def close(self) -> None:
        self._runner.run(self._async.aclose())
        self._runner.stop()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


class Chat:
    """`client.chat` of the synchronous client: `completions`, and the typed SDK's `create` and `stream`;
    `create_async` and `stream_async` run on the client's own loop and are awaitable from any other."""

    def __init__(self, completions: Completions, twin: AsyncChat, runner: _LoopThread) -> None:
        self.completions = completions
        self.twin = twin  # the AsyncClient's chat this client runs
        self.runner = runner

    def create(
        self, request: ChatCompletionRequest | None = None, **fields: Unpack[ChatCompletionRequest]
    ) -> ChatCompletionObject:
        completion: ChatCompletionObject = self.completions.create(
            stream=False, **create_arguments(request, dict(fields), stream=False)
        )
        return completion

    def stream(
        self, request: ChatCompletionRequest | None = None, **fields: Unpack[ChatCompletionRequest]
    ) -> EventStream:
        """The events, once the first has arrived: a refusal raises here, not in the loop."""
        chunks = self.completions.create(stream=True, **create_arguments(request, dict(fields), stream=True))
        try:
            first = next(chunks)
        except StopIteration:
            return EventStream(iter(()))
        return EventStream(prepended(first, chunks))

    async def create_async(
        self, request: ChatCompletionRequest | None = None, **fields: Unpack[ChatCompletionRequest]
    ) -> ChatCompletionObject:
        return await asyncio.wrap_future(self.runner.submit(self.twin.create(request, **fields)))

    async def stream_async(
        self, request: ChatCompletionRequest | None = None, **fields: Unpack[ChatCompletionRequest]
    ) -> AsyncEventStream:
        events = await asyncio.wrap_future(self.runner.submit(self.twin.stream(request, **fields)))
        return AsyncEventStream(from_loop(events, self.runner))


class Images:
    """`client.images` of the synchronous client: `generate` as `AsyncImages.generate` takes it."""

    def __init__(self, runner: _LoopThread, images: AsyncImages) -> None:
        self._runner = runner
        self._async = images

    def generate(self, **kwargs: Any) -> ImagesResponse:
        return self._runner.run(self._async.generate(**kwargs))

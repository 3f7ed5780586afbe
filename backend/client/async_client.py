"""The Python API: OpenAI-shaped `AsyncClient` and `Client`, and the g4f-style `ChatCompletion` facade.

    client = AsyncClient()                       # reads config.toml as the app does
    reply = await client.chat.completions.create(model="local/gemma-3-270m", messages=[...])
    async for chunk in client.chat.completions.create(..., stream=True):
        print(chunk.choices[0].delta.content or "", end="")

`Client` is the same API, synchronous: it runs an `AsyncClient` on an event loop of its own in a background
thread, so it also works where a loop is already running (Jupyter, a Gradio handler).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Coroutine, Generator, Iterator, Sequence
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Literal, TypeVar, Unpack, overload

from .. import media
from ..api.types import (
    ChatCompletion as ChatCompletionObject,
)
from ..api.types import (
    ChatCompletionChunk,
    ImageData,
    ImagesResponse,
)
from ..api.wire import collect, completion_chunks
from ..app import Backend
from ..config import Settings, load_settings
from ..events import StreamEvent
from ..request import ChatRequest, ImageRequest, Message
from .in_code import Naming, settings_in_code
from .typed_sdk import AsyncTypedChat, ClientOptions, TypedChat, in_code

T = TypeVar("T")


def _messages(messages: str | Sequence[Message]) -> list[Message]:
    return [{"role": "user", "content": messages}] if isinstance(messages, str) else list(messages)


class AsyncStream:
    """Chunks of a streamed completion. Iterate it directly, or `await` it first (both forms work).

    Closing it (`await stream.aclose()`, leaving `async with`, or breaking out of a loop and dropping it)
    closes the upstream connection.
    """

    def __init__(self, events: AsyncIterator[StreamEvent], model: str) -> None:
        self._chunks = completion_chunks(events, model)

    def __await__(self) -> Generator[Any, None, AsyncStream]:
        async def itself() -> AsyncStream:
            return self

        return itself().__await__()

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        return self._chunks  # the generator itself: no extra await per chunk

    def __anext__(self) -> Coroutine[Any, Any, ChatCompletionChunk]:
        return self._chunks.__anext__()

    async def aclose(self) -> None:
        await self._chunks.aclose()

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class AsyncCompletions:
    def __init__(self, backend: Backend, naming: Naming | None = None) -> None:
        self._backend = backend
        self._naming = naming  # providers configured in code: model names as code passes them

    @overload
    def create(
        self,
        model: str | None = None,
        *,
        messages: str | Sequence[Message],
        stream: Literal[False] = False,
        temperature: float | None = None,
        top_p: float | None = None,
        max_tokens: int | None = None,
        n: int | None = None,
        seed: int | None = None,
        stop: str | list[str] | None = None,
        timeout: float | None = None,
        response_format: dict[str, Any] | None = None,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        extra_body: dict[str, Any] | None = None,
        image: Any = None,
    ) -> Coroutine[Any, Any, ChatCompletionObject]: ...

    @overload
    def create(
        self,
        model: str | None = None,
        *,
        messages: str | Sequence[Message],
        stream: Literal[True],
        temperature: float | None = None,
        top_p: float | None = None,
        max_tokens: int | None = None,
        n: int | None = None,
        seed: int | None = None,
        stop: str | list[str] | None = None,
        timeout: float | None = None,
        response_format: dict[str, Any] | None = None,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        extra_body: dict[str, Any] | None = None,
        image: Any = None,
    ) -> AsyncStream: ...

    @overload
    def create(
        self,
        model: str | None = None,
        *,
        messages: str | Sequence[Message],
        stream: bool,
        temperature: float | None = None,
        top_p: float | None = None,
        max_tokens: int | None = None,
        n: int | None = None,
        seed: int | None = None,
        stop: str | list[str] | None = None,
        timeout: float | None = None,
        response_format: dict[str, Any] | None = None,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        extra_body: dict[str, Any] | None = None,
        image: Any = None,
    ) -> AsyncStream | Coroutine[Any, Any, ChatCompletionObject]: ...

    def create(
        self,
        model: str | None = None,
        *,
        messages: str | Sequence[Message],
        stream: bool = False,
        temperature: float | None = None,
        top_p: float | None = None,
        max_tokens: int | None = None,
        n: int | None = None,
        seed: int | None = None,
        stop: str | list[str] | None = None,
        timeout: float | None = None,
        response_format: dict[str, Any] | None = None,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        extra_body: dict[str, Any] | None = None,
        image: Any = None,
    ) -> AsyncStream | Coroutine[Any, Any, ChatCompletionObject]:
        """A coroutine returning a `ChatCompletion`, or with `stream=True` an `AsyncStream` of chunks.

        `model` (by name, or first as g4f's examples pass it) is `provider/model` or a route name; None means the
        configured default. `image` (bytes, a path, a file object, a PIL image, a data URL or an http(s) URL) is
        attached to the last user message.
        """
        with_image = self._with_image(_messages(messages), image)
        request = ChatRequest(
            model=(
                self._naming.chat(model, images=media.has_images(with_image))
                if self._naming
                else model or self._backend.models.default_chat
            ),
            messages=with_image,
            temperature=temperature,
            top_p=top_p,
            max_tokens=max_tokens,
            n=n,
            seed=seed,
            stop=stop,
            timeout=timeout,
            response_format=response_format,
            tools=tools,
            tool_choice=tool_choice,
            extra_body=extra_body or {},
        )
        # Resolve now so an unknown model or unsupported parameter raises at the call, before any iteration.
        self._backend.chat.plan(request)
        events = self._backend.chat.stream(request)
        if stream:
            return AsyncStream(events, request.model)
        return collect(events, request.model)

    def _with_image(self, messages: list[Message], image: Any) -> list[Message]:
        if image is None:
            return messages
        image_part = media.image_part(image, max_bytes=self._backend.settings.app.max_upload_bytes)
        for position in range(len(messages) - 1, -1, -1):
            if messages[position].get("role") == "user":
                content = messages[position]["content"]
                parts = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
                messages[position] = {**messages[position], "content": [*parts, image_part]}
                return messages
        return [*messages, {"role": "user", "content": [image_part]}]


class AsyncChat(AsyncTypedChat):
    """`client.chat`: where `completions` lives, as in openai-python; `create` and `stream` are the typed SDK's
    (backend/typed_sdk.py)."""

    def __init__(self, completions: AsyncCompletions) -> None:
        self.completions = completions


class AsyncClient:
    """OpenAI-shaped async client over the configured providers.

    `config`: a path to a TOML file (default: the app's search order), or pass ready `settings`; or, as gpt4free's
    clients take them, `provider` (a kind name, a `Provider`, or a `RetryProvider` chain) and `image_provider`,
    with `api_key`, `base_url` and `proxies` for those that do not set their own (backend/in_code.py); given
    those three alone, the provider is an OpenAI-compatible endpoint at `base_url` (api.openai.com without one).
    `api_key_auth` and `server_url` are the typed SDK's names for `api_key` and `base_url`. Model names are then
    passed as the provider knows them (`model="gpt-4o-mini"`).
    """

    def __init__(
        self, config: str | None = None, *, settings: Settings | None = None, **options: Unpack[ClientOptions]
    ) -> None:
        naming = None
        given = in_code(options)
        if any(value is not None for value in given.values()):
            if config is not None or settings is not None:
                raise ValueError("pass a config (or settings) or providers in code, not both")
            settings, naming = settings_in_code(**given)
        self.backend = Backend(settings or load_settings(config))
        self.chat = AsyncChat(AsyncCompletions(self.backend, naming))
        self.images = AsyncImages(self.backend, naming)

    async def aclose(self) -> None:
        await self.backend.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


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
        **kwargs: Any,
    ) -> ChatCompletionObject: ...

    @overload
    def create(
        self, model: str | None = None, *, messages: str | Sequence[Message], stream: Literal[True], **kwargs: Any
    ) -> Iterator[ChatCompletionChunk]: ...

    @overload
    def create(
        self, model: str | None = None, *, messages: str | Sequence[Message], stream: bool, **kwargs: Any
    ) -> ChatCompletionObject | Iterator[ChatCompletionChunk]: ...

    def create(
        self, model: str | None = None, *, messages: str | Sequence[Message], stream: bool = False, **kwargs: Any
    ) -> ChatCompletionObject | Iterator[ChatCompletionChunk]:
        """Like `AsyncCompletions.create`, synchronous: a `ChatCompletion`, or an iterator of chunks. The keyword
        arguments are those of `AsyncCompletions.create`."""
        if not stream:

            async def complete() -> ChatCompletionObject:
                completion: ChatCompletionObject = await self._async.create(
                    model, messages=messages, stream=False, **kwargs
                )
                return completion

            return self._runner.run(complete())

        async def start() -> AsyncStream:
            chunks: AsyncStream = self._async.create(model, messages=messages, stream=True, **kwargs)
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


class Chat(TypedChat):
    """`client.chat` of the synchronous client: `completions`, and the typed SDK's `create` and `stream`."""

    def __init__(self, completions: Completions, twin: AsyncChat, runner: _LoopThread) -> None:
        self.completions = completions
        self.twin = twin
        self.runner = runner


class Images:
    """`client.images` of the synchronous client: `generate` as `AsyncImages.generate` takes it."""

    def __init__(self, runner: _LoopThread, images: AsyncImages) -> None:
        self._runner = runner
        self._async = images

    def generate(self, **kwargs: Any) -> ImagesResponse:
        return self._runner.run(self._async.generate(**kwargs))


class ChatCompletion:
    """The g4f-style facade: plain strings in and out, on a shared default client.

    for piece in ChatCompletion.create(model=..., messages=[...], stream=True): print(piece, end="")
    text = await ChatCompletion.create_async(model=..., messages=[...])
    """

    _client: Client | None = None
    _lock = threading.Lock()

    @classmethod
    def _default(cls) -> Client:
        with cls._lock:
            if cls._client is None:
                cls._client = Client()
            return cls._client

    @overload
    @classmethod
    def create(
        cls,
        model: str | None = None,
        messages: str | Sequence[Message] = (),
        stream: Literal[False] = False,
        **kwargs: Any,
    ) -> str: ...

    @overload
    @classmethod
    def create(
        cls, model: str | None = None, messages: str | Sequence[Message] = (), *, stream: Literal[True], **kwargs: Any
    ) -> Iterator[str]: ...

    @classmethod
    def create(
        cls, model: str | None = None, messages: str | Sequence[Message] = (), stream: bool = False, **kwargs: Any
    ) -> str | Iterator[str]:
        """The reply text, or with `stream=True` an iterator of text pieces."""
        client = cls._default()
        if not stream:
            reply = client.chat.completions.create(model=model, messages=messages, **kwargs)
            return reply.choices[0].message.content or ""
        chunks = client.chat.completions.create(model=model, messages=messages, stream=True, **kwargs)
        return (piece for chunk in chunks for choice in chunk.choices if (piece := choice.delta.content))

    @classmethod
    async def create_async(cls, model: str | None = None, messages: str | Sequence[Message] = (), **kwargs: Any) -> str:
        """The whole reply text; awaitable from any event loop."""
        client = cls._default()

        async def run() -> str:
            reply = await client._async.chat.completions.create(model=model, messages=messages, **kwargs)
            return reply.choices[0].message.content or ""

        return await asyncio.wrap_future(client.submit(run()))


class AsyncImages:
    def __init__(self, backend: Backend, naming: Naming | None = None) -> None:
        self._backend = backend
        self._naming = naming

    async def generate(
        self,
        *,
        prompt: str,
        model: str | None = None,
        n: int = 1,
        size: str = "1024x1024",
        response_format: str = "url",
        negative_prompt: str | None = None,
        seed: int | None = None,
        quality: str | None = None,
    ) -> ImagesResponse:
        """Generate images; every image is also saved under the data directory.

        `response_format="url"` gives `data[i].url`, the path of the saved file; `"b64_json"` the bytes in base64.
        """
        if response_format not in ("url", "b64_json"):
            raise ValueError('response_format must be "url" or "b64_json"')
        request = ImageRequest(
            model=self._naming.image(model) if self._naming else model or self._backend.settings.defaults.image or "",
            prompt=prompt,
            negative_prompt=negative_prompt,
            size=size,
            n=n,
            seed=seed,
            quality=quality,
        )
        stored = await self._backend.images.generate(request)
        data = []
        for image in stored:
            if response_format == "url":
                data.append(ImageData(url=str(image.path), revised_prompt=image.revised_prompt))
            else:
                encoded = base64.b64encode(image.path.read_bytes()).decode("ascii")
                data.append(ImageData(b64_json=encoded, revised_prompt=image.revised_prompt))
        return ImagesResponse(created=int(time.time()), model=request.model, data=data)

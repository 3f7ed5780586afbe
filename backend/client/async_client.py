"""The Python API: the OpenAI-shaped `AsyncClient` (its synchronous twin `Client`: sync_client.py).

    client = AsyncClient()                       # reads config.toml as the app does
    reply = await client.chat.completions.create(model="local/gemma-3-270m", messages=[...])
    async for chunk in client.chat.completions.create(..., stream=True):
        print(chunk.choices[0].delta.content or "", end="")

`Client` is the same API, synchronous: it runs an `AsyncClient` on an event loop of its own in a background
thread, so it also works where a loop is already running (Jupyter, a Gradio handler).
"""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator, Coroutine, Generator, Sequence
from typing import Any, Literal, Unpack, overload

from .. import media
from ..api.types import ChatCompletion as ChatCompletionObject
from ..api.types import ChatCompletionChunk, ImageData, ImagesResponse
from ..api.wire import collect, completion_chunks
from ..app import Backend
from ..config import Settings, load_settings
from ..events import StreamEvent
from ..request import ChatRequest, ImageRequest, Message
from .in_code import Naming, settings_in_code
from .params import ChatParams, CreateParams
from .typed_sdk import AsyncEventStream, ChatCompletionRequest, ClientOptions, create_arguments, in_code, read_first


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
        **params: Unpack[CreateParams],
    ) -> Coroutine[Any, Any, ChatCompletionObject]: ...

    @overload
    def create(
        self,
        model: str | None = None,
        *,
        messages: str | Sequence[Message],
        stream: Literal[True],
        **params: Unpack[CreateParams],
    ) -> AsyncStream: ...

    @overload
    def create(
        self,
        model: str | None = None,
        *,
        messages: str | Sequence[Message],
        stream: bool,
        **params: Unpack[CreateParams],
    ) -> AsyncStream | Coroutine[Any, Any, ChatCompletionObject]: ...

    def create(
        self,
        model: str | None = None,
        *,
        messages: str | Sequence[Message],
        stream: bool = False,
        extra_body: dict[str, Any] | None = None,
        image: Any = None,
        **params: Unpack[ChatParams],
    ) -> AsyncStream | Coroutine[Any, Any, ChatCompletionObject]:
        """A coroutine returning a `ChatCompletion`, or with `stream=True` an `AsyncStream` of chunks.

        `model` (by name, or first as g4f's examples pass it) is `provider/model` or a route name; None means the
        configured default. The other keywords are CreateParams' (backend/client/params.py).
        """
        unknown = params.keys() - ChatParams.__optional_keys__
        if unknown:
            raise TypeError(f"create() got an unexpected keyword argument {min(unknown)!r}")
        with_image = self._with_image(_messages(messages), image)
        request = ChatRequest(
            model=(
                self._naming.chat(model, images=media.has_images(with_image))
                if self._naming
                else model or self._backend.models.default_chat
            ),
            messages=with_image,
            extra_body=extra_body or {},
            **params,
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


class AsyncChat:
    """`client.chat`: where `completions` lives, as in openai-python; `create` and `stream` are the typed SDK's
    (backend/client/typed_sdk.py), and `create_async` / `stream_async` the same."""

    def __init__(self, completions: AsyncCompletions) -> None:
        self.completions = completions

    async def create(
        self, request: ChatCompletionRequest | None = None, **fields: Unpack[ChatCompletionRequest]
    ) -> ChatCompletionObject:
        arguments = create_arguments(request, dict(fields), stream=False)
        completion: ChatCompletionObject = await self.completions.create(stream=False, **arguments)
        return completion

    async def stream(
        self, request: ChatCompletionRequest | None = None, **fields: Unpack[ChatCompletionRequest]
    ) -> AsyncEventStream:
        """The events, once the first has arrived: a refusal raises here, not in the loop."""
        arguments = create_arguments(request, dict(fields), stream=True)
        chunks: AsyncStream = self.completions.create(stream=True, **arguments)
        return AsyncEventStream(await read_first(chunks))

    create_async = create
    stream_async = stream


class AsyncClient:
    """OpenAI-shaped async client over the configured providers.

    `config`: a path to a TOML file (default: the app's search order), or pass ready `settings`; or, as gpt4free's
    clients take them, `provider` (a kind name, a `Provider`, or a `RetryProvider` chain) and `image_provider`,
    with `api_key`, `base_url` and `proxies` for those that do not set their own (backend/client/in_code.py); given
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

"""The g4f-style facade: plain strings in and out, on a shared default client.

for piece in ChatCompletion.create(model=..., messages=[...], stream=True): print(piece, end="")
text = await ChatCompletion.create_async(model=..., messages=[...])
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from typing import Literal, Unpack, overload

from ..request import Message
from .params import CreateParams
from .sync_client import Client


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
        **params: Unpack[CreateParams],
    ) -> str: ...

    @overload
    @classmethod
    def create(
        cls,
        model: str | None = None,
        messages: str | Sequence[Message] = (),
        *,
        stream: Literal[True],
        **params: Unpack[CreateParams],
    ) -> Iterator[str]: ...

    @classmethod
    def create(
        cls,
        model: str | None = None,
        messages: str | Sequence[Message] = (),
        stream: bool = False,
        **params: Unpack[CreateParams],
    ) -> str | Iterator[str]:
        """The reply text, or with `stream=True` an iterator of text pieces."""
        client = cls._default()
        if not stream:
            reply = client.chat.completions.create(model=model, messages=messages, **params)
            return reply.choices[0].message.content or ""
        chunks = client.chat.completions.create(model=model, messages=messages, stream=True, **params)
        return (piece for chunk in chunks for choice in chunk.choices if (piece := choice.delta.content))

    @classmethod
    async def create_async(
        cls, model: str | None = None, messages: str | Sequence[Message] = (), **params: Unpack[CreateParams]
    ) -> str:
        """The whole reply text; awaitable from any event loop."""
        client = cls._default()

        async def run() -> str:
            reply = await client._async.chat.completions.create(model=model, messages=messages, **params)
            return reply.choices[0].message.content or ""

        return await asyncio.wrap_future(client.submit(run()))

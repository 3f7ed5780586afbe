"""VisionService: ask a vision model about one image; the answer streams like a chat reply."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from ..events import StreamEvent
from ..media import image_part
from ..request import ChatRequest
from .chat import ChatService

DEFAULT_QUESTION = "Describe this image."


class VisionService:
    default_question = DEFAULT_QUESTION

    def __init__(self, chat: ChatService) -> None:
        self.chat = chat

    def request(self, image: Any, question: str = "", model: str | None = None, **params: Any) -> ChatRequest:
        """A chat request holding `image` (bytes, path, file, PIL image, data URL or http(s) URL) and a question.

        Local images are validated and downscaled here, so a bad upload fails before any network call."""
        settings = self.chat.models.settings
        part = image_part(image, max_bytes=settings.app.max_upload_bytes)
        return self._request(part, question, model, params)

    async def prepare(self, image: Any, question: str = "", model: str | None = None, **params: Any) -> ChatRequest:
        """`request()` with the image validated on a worker thread: decoding a large picture takes a while, and
        the event loop serves every other visitor meanwhile."""
        settings = self.chat.models.settings
        part = await asyncio.to_thread(image_part, image, max_bytes=settings.app.max_upload_bytes)
        return self._request(part, question, model, params)

    def _request(self, part: dict[str, Any], question: str, model: str | None, params: dict[str, Any]) -> ChatRequest:
        settings = self.chat.models.settings
        content = [{"type": "text", "text": question.strip() or DEFAULT_QUESTION}, part]
        model = model or settings.defaults.vision or ""
        self.chat.models.resolve_task(model, "vision")
        return ChatRequest(model=model, messages=[{"role": "user", "content": content}], **params)

    async def describe(
        self, image: Any, question: str = "", model: str | None = None, **params: Any
    ) -> AsyncIterator[StreamEvent]:
        """Stream the model's answer about `image`."""
        async for event in self.chat.stream(await self.prepare(image, question, model, **params)):
            yield event

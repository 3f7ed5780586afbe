"""VisionService: ask a vision model about one image; the answer streams like a chat reply."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ..events import StreamEvent
from ..media import image_part
from ..request import ChatRequest
from .chat import ChatService

DEFAULT_QUESTION = "Describe this image."


class VisionService:
    def __init__(self, chat: ChatService) -> None:
        self.chat = chat

    def request(self, image: Any, question: str = "", model: str | None = None, **params) -> ChatRequest:
        """A chat request holding `image` (bytes, path, file, PIL image, data URL or http(s) URL) and a question.

        Local images are validated and downscaled here, so a bad upload fails before any network call."""
        settings = self.chat.models.settings
        part = image_part(image, max_bytes=settings.app.max_upload_bytes)
        content = [{"type": "text", "text": question.strip() or DEFAULT_QUESTION}, part]
        model = model or settings.defaults.vision or ""
        self.chat.models.resolve_task(model, "vision")
        return ChatRequest(model=model, messages=[{"role": "user", "content": content}], **params)

    def describe(
        self, image: Any, question: str = "", model: str | None = None, **params
    ) -> AsyncIterator[StreamEvent]:
        """Stream the model's answer about `image`."""
        return self.chat.stream(self.request(image, question, model, **params))

"""ImageService: generate images with the chosen model, retrying like chat does, and keep every result on disk."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from ..auth import LOCAL_OWNER
from ..errors import APIError, BadRequestError, StreamError
from ..media import fetch_bytes
from ..providers.base import GeneratedImage
from ..providers.http import sniff_mime
from ..request import ImageRequest
from .image_store import ImageStore, StoredImage
from .registry import ModelRegistry
from .retry import retry_delay

MAX_IMAGES = 10
IMAGE_DOWNLOAD_LIMIT = 64_000_000  # bytes of one generated image fetched from a URL


class ImageService:
    def __init__(self, models: ModelRegistry, store: ImageStore) -> None:
        self.models = models
        self.store = store

    async def generate(self, request: ImageRequest, owner: str = LOCAL_OWNER) -> list[StoredImage]:
        """Generate `request.n` images and save them as `owner`'s; raises a typed error (nothing is saved then)."""
        provider, model = self.models.resolve_task(request.model, "image")
        if not 1 <= request.n <= MAX_IMAGES:
            raise BadRequestError(f"n must be between 1 and {MAX_IMAGES}", provider=provider.name, model=model)
        try:
            request.dimensions()
        except ValueError as exc:
            raise BadRequestError(str(exc), provider=provider.name, model=model) from None
        attempt = 0
        while True:
            try:
                images = await provider.generate_images(request.for_model(model))
                break
            except APIError as error:
                delay = retry_delay(error, attempt, provider.retry_after_cap)
                if delay is None or attempt >= provider.max_retries:
                    raise
                attempt += 1
                await asyncio.sleep(delay)
        images = [await self._fetched(image, provider.name, model) for image in images]
        model_id = f"{provider.name}/{model}"
        return [await self.store.save(image, request, model_id, owner) for image in images]

    async def _fetched(self, image: GeneratedImage, provider: str, model: str) -> GeneratedImage:
        """An image the provider answered with as a URL on another host, downloaded as a stranger would (no key,
        no private address unless allowed, bounded in size and time) and checked to be an image."""
        if image.url is None or image.data:
            return image
        app = self.models.settings.app
        data = await fetch_bytes(
            image.url,
            allow_private=app.allow_private_image_urls,
            max_bytes=IMAGE_DOWNLOAD_LIMIT,
            timeout=app.image_fetch_timeout,
        )
        mime = sniff_mime(data)
        if not mime.startswith("image/"):
            raise StreamError(f"the image URL it answered with held no image ({mime})", provider=provider, model=model)
        return replace(image, data=data, mime=mime, url=None)

    async def history(self, owner: str = LOCAL_OWNER, limit: int = 100) -> list[StoredImage]:
        return await self.store.history(owner, limit)

"""Generated images' URL tokens kept in Redis, so an image URL the API gave answers on any replica that serves the
same images folder (deploy/'s one volume); the API keeps its own in one process (backend/api/files.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .redis import PREFIX

if TYPE_CHECKING:
    import redis.asyncio as aioredis

FILES = PREFIX + "file:"  # + an image URL's token: the image's path


class SharedFiles:
    """Image URL tokens and the paths they name, for `seconds` each."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def add(self, token: str, path: Path, seconds: int) -> None:
        await self.redis.set(FILES + token, str(path), ex=seconds)

    async def get(self, token: str) -> Path | None:
        found = await self.redis.get(FILES + token)
        return None if found is None else Path(found.decode() if isinstance(found, bytes) else found)

"""Files beside the database: images and documents attached to messages (MediaFiles), written so that a crash
never leaves half of one, in a folder per owner."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import secrets
import time
from pathlib import Path

import aiofiles
import aiofiles.os

from ..media import Image
from .model import ConversationError

STALE_AFTER = 600.0  # seconds: a temporary file this old belongs to a write that was killed, not to one running
TEMPORARY = re.compile(r"\..+\.[0-9a-f]{8}\.tmp")


async def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` so a crash leaves either the old or the new content: temp file, fsync, rename."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    async with aiofiles.open(temporary, "wb") as file:
        await file.write(data)
        await file.flush()
        await asyncio.to_thread(os.fsync, file.fileno())
    await aiofiles.os.replace(temporary, path)


async def remove_stale_temporaries(folder: Path) -> int:
    """Delete what killed writes left in `folder` (temporary files older than STALE_AFTER); how many."""
    if not await aiofiles.os.path.isdir(folder):
        return 0
    removed = 0
    horizon = time.time() - STALE_AFTER
    for name in await aiofiles.os.listdir(folder):
        if not TEMPORARY.fullmatch(name):
            continue
        path = folder / name
        with contextlib.suppress(OSError):  # gone already, or another process's to finish
            if (await aiofiles.os.stat(path)).st_mtime < horizon:
                await aiofiles.os.remove(path)
                removed += 1
    return removed


def owner_folder(owner: str) -> str:
    """A folder name for an owner: readable, and distinct for distinct names (a hash settles look-alikes)."""
    slug = re.sub(r"[^A-Za-z0-9_-]", "_", owner)[:40] or "_"
    return f"{slug}-{hashlib.sha256(owner.encode()).hexdigest()[:10]}"


MIME_BY_EXTENSION = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".pdf": "application/pdf",
    ".txt": "text/plain",
}


class MediaFiles:
    """Images attached to conversations: files named by their content's hash, per owner, under
    `<root>/<owner>/media/`, written atomically (a crash leaves no half file; what a killed write left behind is
    removed on the owner's first visit)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser()
        self._tidied: set[str] = set()

    async def save(self, owner: str, data: bytes, mime: str) -> str:
        extension = {mime: suffix for suffix, mime in MIME_BY_EXTENSION.items()}
        reference = f"media/{hashlib.sha256(data).hexdigest()}{extension.get(mime, '.bin')}"
        path = self.root / owner_folder(owner) / reference
        if not await aiofiles.os.path.exists(path):
            await aiofiles.os.makedirs(path.parent, exist_ok=True)
            await write_atomically(path, data)
        return reference

    async def load(self, owner: str, reference: str) -> Image:
        """An image saved by `save`. It was validated and prepared before it was saved, so it is read, not
        decoded again."""
        path = self.path(owner, reference)
        if owner not in self._tidied:
            self._tidied.add(owner)
            await remove_stale_temporaries(path.parent)
        try:
            async with aiofiles.open(path, "rb") as file:
                data = await file.read()
        except OSError:
            raise ConversationError("An image of this conversation is missing from the store.") from None
        return Image(data, MIME_BY_EXTENSION.get(path.suffix, "application/octet-stream"))

    def path(self, owner: str, reference: str) -> Path:
        if not re.fullmatch(r"media/[0-9a-f]{64}\.(png|jpg|webp|gif|pdf|txt|bin)", reference):
            raise ConversationError("Not an image reference of this store.")
        return self.root / owner_folder(owner) / reference

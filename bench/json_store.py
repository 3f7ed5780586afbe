"""The store Switchboard used before the SQL one, kept as the baseline of `python -m bench.store`.

`FileConversationStore` as it was at commit 614e88b (`backend/conversations.py`): one JSON file per conversation,
`<root>/<owner>/<id>.json`, written to a temporary file, flushed to disk and renamed over the old one; an in-memory
index per owner (every conversation's summary and lower-cased text, read from all the files on the owner's first
call) answers listing and search. Only the models are today's (`backend.conversations`); the app no longer uses
this class.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from pathlib import Path

import aiofiles
import aiofiles.os
from pydantic import ValidationError

from backend.conversations import Conversation, ConversationError, Summary
from backend.conversations.media_files import owner_folder, write_atomically

log = logging.getLogger(__name__)


class FileConversationStore:
    """Conversations as JSON files; an in-memory index per owner makes listing and search fast."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser()
        self._index: dict[str, dict[str, tuple[Summary, str]]] = {}
        self._lock = asyncio.Lock()

    async def list(self, owner: str, query: str = "") -> list[Summary]:
        """Conversations newest first; with `query`, those whose title or text contains every word of it."""
        index = await self._owner_index(owner)
        words = query.lower().split()
        found = [summary for summary, text in index.values() if all(word in text for word in words)]
        return sorted(found, key=lambda summary: summary.updated, reverse=True)

    async def get(self, owner: str, conversation_id: str) -> Conversation:
        path = self._file(owner, conversation_id)
        try:
            async with aiofiles.open(path, "rb") as file:
                return Conversation.model_validate_json(await file.read())
        except (FileNotFoundError, ValidationError, ValueError):
            raise ConversationError("That conversation does not exist (or is not yours).") from None

    async def save(self, owner: str, conversation: Conversation) -> None:
        conversation.auto_title()
        conversation.updated = time.time()
        await aiofiles.os.makedirs(self._dir(owner), exist_ok=True)
        await write_atomically(self._file(owner, conversation.id), conversation.model_dump_json(indent=1).encode())
        (await self._owner_index(owner))[conversation.id] = _indexed(conversation)

    async def delete(self, owner: str, conversation_id: str) -> None:
        try:
            await aiofiles.os.remove(self._file(owner, conversation_id))
        except FileNotFoundError:
            raise ConversationError("That conversation does not exist (or is not yours).") from None
        (await self._owner_index(owner)).pop(conversation_id, None)

    async def save_image(self, owner: str, data: bytes, mime: str) -> str:
        extension = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "image/gif": ".gif"}
        reference = f"media/{hashlib.sha256(data).hexdigest()}{extension.get(mime, '.bin')}"
        path = self._dir(owner) / reference
        if not await aiofiles.os.path.exists(path):
            await aiofiles.os.makedirs(path.parent, exist_ok=True)
            await write_atomically(path, data)
        return reference

    def image_path(self, owner: str, reference: str) -> Path:
        if not re.fullmatch(r"media/[0-9a-f]{64}\.(png|jpg|webp|gif|bin)", reference):
            raise ConversationError("Not an image reference of this store.")
        return self._dir(owner) / reference

    def _dir(self, owner: str) -> Path:
        return self.root / owner_folder(owner)

    def _file(self, owner: str, conversation_id: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{16}", conversation_id or ""):
            raise ConversationError("That conversation does not exist (or is not yours).")
        return self._dir(owner) / f"{conversation_id}.json"

    async def _owner_index(self, owner: str) -> dict[str, tuple[Summary, str]]:
        if owner in self._index:
            return self._index[owner]
        async with self._lock:
            if owner not in self._index:
                self._index[owner] = await self._load_index(owner)
        return self._index[owner]

    async def _load_index(self, owner: str) -> dict[str, tuple[Summary, str]]:
        folder = self._dir(owner)
        if not await aiofiles.os.path.isdir(folder):
            return {}
        index = {}
        for name in await aiofiles.os.listdir(folder):
            if not re.fullmatch(r"[0-9a-f]{16}\.json", name):
                continue  # temporary files of an interrupted save, media folder
            try:
                async with aiofiles.open(folder / name, "rb") as file:
                    conversation = Conversation.model_validate_json(await file.read())
            except (OSError, ValueError) as exc:  # ValidationError is a ValueError
                # One damaged file (edited by hand, a full disk) must not hide all the others.
                log.warning("skipping unreadable conversation %s: %s", folder / name, str(exc).splitlines()[0])
                continue
            index[conversation.id] = _indexed(conversation)
        return index


def _indexed(conversation: Conversation) -> tuple[Summary, str]:
    text = " ".join([conversation.title, *(m.text for m in conversation.messages)]).lower()
    return Summary(id=conversation.id, title=conversation.title, updated=conversation.updated), text

"""Writing files so that a crash never leaves half of one."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
from pathlib import Path

import aiofiles
import aiofiles.os


async def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` so a crash leaves either the old or the new content: temp file, fsync, rename."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    async with aiofiles.open(temporary, "wb") as file:
        await file.write(data)
        await file.flush()
        await asyncio.to_thread(os.fsync, file.fileno())
    await aiofiles.os.replace(temporary, path)


def owner_folder(owner: str) -> str:
    """A folder name for an owner: readable, and distinct for distinct names (a hash settles look-alikes)."""
    slug = re.sub(r"[^A-Za-z0-9_-]", "_", owner)[:40] or "_"
    return f"{slug}-{hashlib.sha256(owner.encode()).hexdigest()[:10]}"

"""Writing files so that a crash never leaves half of one."""

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

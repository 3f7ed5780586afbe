"""Writing files so that a crash never leaves half of one."""

from __future__ import annotations

import asyncio
import os
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

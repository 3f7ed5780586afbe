"""What earlier versions kept as JSON files beside the database, read once per owner to be imported into it (the
files are left as they were): conversations (`<data_dir>/conversations/<owner folder>/<id>.json`) and generated
images' details (a JSON file beside each image)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import aiofiles
import aiofiles.os

from ..conversations.media_files import owner_folder
from ..conversations.model import Conversation

log = logging.getLogger(__name__)


async def legacy_conversations(root: Path, owner: str) -> list[Conversation]:
    """The conversations an earlier version kept as JSON files (`<root>/<owner folder>/<id>.json`), as they were;
    unreadable files are skipped with a warning."""
    folder = Path(root).expanduser() / owner_folder(owner)
    if not await aiofiles.os.path.isdir(folder):
        return []
    found = []
    for name in sorted(await aiofiles.os.listdir(folder)):
        if not re.fullmatch(r"[0-9a-f]{16}\.json", name):
            continue
        try:
            async with aiofiles.open(folder / name, "rb") as file:
                found.append(Conversation.model_validate_json(await file.read()))
        except (OSError, ValueError) as exc:  # ValidationError is a ValueError
            log.warning("skipping unreadable conversation %s: %s", folder / name, str(exc).splitlines()[0])
    return found


async def legacy_image_details(folder: Path) -> list[tuple[str, float, dict[str, Any]]]:
    """(image file name, created, details) from the JSON files an earlier version wrote beside each image, for
    images whose file is still there; unreadable files are skipped."""
    if not await aiofiles.os.path.isdir(folder):
        return []
    found = []
    for name in await aiofiles.os.listdir(folder):
        if not name.endswith(".json"):
            continue
        try:
            async with aiofiles.open(folder / name, "rb") as file:
                details = json.loads(await file.read())
            image = Path(details.pop("path")).name
            created = float(details.pop("created"))
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            continue
        if await aiofiles.os.path.isfile(folder / image):
            found.append((image, created, details))
    return found

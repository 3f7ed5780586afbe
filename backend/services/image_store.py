"""Where generated images are kept.

Every generated image is written under `<data_dir>/images/` with aiofiles, next to a JSON file holding the prompt,
model and parameters; both are written to a temporary name and renamed, so a crash never leaves half a file.
"""

from __future__ import annotations

import io
import secrets
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiofiles
import aiofiles.os

from ..conversations.media_files import owner_folder, remove_stale_temporaries, write_atomically
from ..providers.base import GeneratedImage
from ..request import ImageRequest


@dataclass(slots=True)
class StoredImage:
    """A generated image saved under the data directory, with its details."""

    path: Path
    prompt: str
    model: str
    size: str  # as requested
    negative_prompt: str | None = None
    seed: int | None = None
    revised_prompt: str | None = None
    created: float = field(default_factory=time.time)
    pixels: str | None = None  # WIDTHxHEIGHT of the image as made (a model may not make the size requested)

    def details(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "image/gif": ".gif"}


class ImageRecords(Protocol):
    """Where generated images' details are kept (the SQL store's image log): `add` one, `list` the newest
    (importing those an earlier version kept as JSON files in `legacy_folder` first, once)."""

    async def add(self, owner: str, name: str, created: float, details: dict[str, Any]) -> None: ...
    async def list(self, owner: str, limit: int, legacy_folder: Path | None = None) -> Sequence[dict[str, Any]]: ...


class ImageStore:
    """Generated images per owner: the files under `<root>/<owner>/<stamp>-<id>.<ext>`, written atomically with
    aiofiles; their prompt, model and parameters as rows of the database (`records`)."""

    def __init__(self, root: Path, records: ImageRecords) -> None:
        self.root = Path(root).expanduser()
        self.records = records

    def folder(self, owner: str) -> Path:
        return self.root / owner_folder(owner)

    async def save(self, image: GeneratedImage, request: ImageRequest, model_id: str, owner: str) -> StoredImage:
        folder = self.folder(owner)
        await aiofiles.os.makedirs(folder, exist_ok=True)
        # Sortable to the nanosecond, so history is newest first even within one second or one batch.
        now = time.time_ns()
        stem = f"{time.strftime('%Y%m%d-%H%M%S', time.localtime(now / 1e9))}-{now % 10**9:09d}-{secrets.token_hex(3)}"
        path = folder / f"{stem}{EXTENSIONS.get(image.mime, '.png')}"
        stored = StoredImage(
            path=path,
            prompt=request.prompt,
            model=model_id,
            size=request.size,
            negative_prompt=request.negative_prompt,
            seed=image.seed if image.seed is not None else request.seed,
            revised_prompt=image.revised_prompt,
            pixels=pixel_size(image.data),
        )
        await write_atomically(path, image.data)
        details = {k: v for k, v in stored.details().items() if k not in ("path", "created")}
        await self.records.add(owner, path.name, stored.created, details)
        return stored

    async def history(self, owner: str, limit: int = 100) -> list[StoredImage]:
        """The owner's most recent generated images, newest first (those whose file is gone are left out)."""
        folder = self.folder(owner)
        if await aiofiles.os.path.isdir(folder):
            await remove_stale_temporaries(folder)
        stored = []
        for record in await self.records.list(owner, limit, legacy_folder=folder):
            path = folder / record.pop("name")
            if await aiofiles.os.path.isfile(path):
                image = StoredImage(path=path, **record)
                if image.pixels is None:  # kept by an earlier version: measured from its file's header
                    async with aiofiles.open(path, "rb") as file:
                        image.pixels = pixel_size(await file.read(64 * 1024))
                stored.append(image)
        return stored


def pixel_size(data: bytes) -> str | None:
    """WIDTHxHEIGHT of an encoded image, read from its header (nothing is decoded); None when unreadable."""
    from PIL import Image as PILImage

    try:
        with PILImage.open(io.BytesIO(data)) as picture:
            width, height = picture.size
    except (OSError, ValueError, SyntaxError):
        return None
    return f"{width}x{height}"

"""Generated images by unguessable tokens, for the URLs the API answers an image request with."""

from __future__ import annotations

import logging
import secrets
import time
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

FILE_SECONDS = 3600  # how long an image URL answers
FILES_KEPT = 10_000


class SharedTokens(Protocol):
    """Tokens every replica can look up (backend/replicas/files.py)."""

    async def add(self, token: str, path: Path, seconds: int) -> None: ...
    async def get(self, token: str) -> Path | None: ...


class ImageURLs:
    """Generated images by unguessable tokens, for an hour (the newest FILES_KEPT in this process). With replicas,
    a token is kept in Redis too, so a URL answers on any replica that shares the images folder (deploy/'s one
    volume); a path found there is served only from inside that folder."""

    def __init__(self, folder: Path, shared: SharedTokens | None) -> None:
        self._folder = folder.expanduser().resolve()
        self._shared = shared
        self._paths: OrderedDict[str, tuple[Path, float]] = OrderedDict()

    async def add(self, path: Path) -> str:
        token = secrets.token_urlsafe(24) + path.suffix
        self._paths[token] = (path, time.monotonic() + FILE_SECONDS)
        while len(self._paths) > FILES_KEPT:
            self._paths.popitem(last=False)
        if self._shared is not None:
            try:
                await self._shared.add(token, path, FILE_SECONDS)
            except Exception:  # Redis unreachable: the URL still answers here
                log.warning("could not share an image URL with the other replicas", exc_info=True)
        return token

    async def get(self, token: str) -> Path | None:
        found = self._paths.get(token)
        if found is not None:
            return found[0] if found[1] >= time.monotonic() else None
        if self._shared is None:
            return None
        try:
            shared = await self._shared.get(token)
        except Exception:  # Redis unreachable: only this replica's URLs answer
            log.warning("could not look up an image URL of another replica", exc_info=True)
            return None
        if shared is None or not shared.resolve().is_relative_to(self._folder):
            return None
        return shared

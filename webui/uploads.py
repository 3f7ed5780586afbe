"""Uploads (Gradio's `/gradio_api/upload`, where the page's attachments, pictures and imports go first), held to what
one visitor and the disk may take. Thirty uploads of 9.9 MB once stored 300 MB in 3 s, counted against nothing and
never deleted.

- **Per visitor**: the bytes uploaded in any hour, `app.max_upload_mb_per_hour` (per login; without logins, per
  address; across replicas through Redis, like the other limits; on when they are). Over it: 429, one sentence.
- **The folder**: what Gradio keeps in its folder (uploads, and the copies of the files it serves) stays under
  `app.max_upload_folder_mb`. Over it: 507, one sentence.
- **Deleted**: a file there is deleted `app.upload_kept_minutes` after it arrived (swept every minute). No chat
  refers to it: a sent message keeps its files in its owner's media folder (backend/conversations/media_files.py).

The folder is Switchboard's own (`GRADIO_TEMP_DIR`, by default `<temp>/switchboard-gradio`: see gradio_tuning), so
the sweep deletes no other program's files, and it finds what a process killed before it could tidy left behind.
An upload is counted before it is read, by the length it states (`Content-Length`, which browsers and HTTP clients
send); each counts at least UPLOAD_FLOOR, what a folder and a file take on disk however small.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from starlette.requests import Request

from backend import Backend, TooManyRequestsError, UploadAllowance

from .identity import visitor_key

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

UPLOAD_PATHS = ("/gradio_api/upload", "/gradio_api/upload/")
UPLOAD_FLOOR = 16_000  # bytes an upload counts at least (a 4 KB folder and a 4 KB file, and the request)
SWEEP_SECONDS = 60.0  # how often old files are deleted (more often when they are kept less than ten minutes)


def upload_allowance(backend: Backend, *, exposed: bool) -> UploadAllowance:
    """Per-visitor upload bytes when the app is `exposed` (logins, a share link, a non-loopback address), counted
    across replicas when there are; none for a local single-user app."""
    return backend.upload_allowance(int(backend.settings.app.max_upload_mb_per_hour * 1_000_000) if exposed else 0)


class UploadQuota:
    """Counts and refuses uploads (see the module's docstring); sweeps the upload folder while the app runs."""

    def __init__(self, app: ASGIApp, gradio_app: Any, backend: Backend, exposed: bool) -> None:
        settings = backend.settings.app
        self.app = app
        self.gradio = gradio_app
        self.allowance = upload_allowance(backend, exposed=exposed)
        self.folder = Path(gradio_app.uploaded_file_dir)
        self.most = int(settings.max_upload_folder_mb * 1_000_000)
        self.kept = settings.upload_kept_minutes * 60
        self.held = 0  # bytes in the folder: as last measured, and the uploads let in since
        self._let_in = 0  # bytes of every upload let in
        self._sweeping: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._lifespan(receive), send)
            return
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in UPLOAD_PATHS:
            await self.app(scope, receive, send)
            return
        refused = await self._refusal(scope)
        if refused is not None:
            await _say(send, *refused)
            return
        await self.app(scope, receive, send)

    async def _refusal(self, scope: Scope) -> tuple[int, str, float | None] | None:
        """Why this upload is refused (status, sentence, seconds to wait), or None when it is counted and let in."""
        stated = Request(scope).headers.get("content-length", "")
        if not stated.isdigit():
            return 411, "An upload must state its length (Content-Length).", None
        size = max(int(stated), UPLOAD_FLOOR)
        if self.most and self.held + size > self.most:
            log.warning("upload refused: the upload folder holds %d MB", self.held // 1_000_000)
            return 507, "The server holds as many uploads as it may right now; try again in a while.", None
        try:
            await self.allowance.take(self._visitor(scope), size)
        except TooManyRequestsError as error:
            return 429, error.user_message(), error.retry_after
        self.held += size
        self._let_in += size
        return None

    def _visitor(self, scope: Scope) -> str:
        """Who uploads, as the per-visitor limits name them: the login of Gradio's cookie (the guard outside has
        looked it up already), else the address."""
        cookies = Request(scope).cookies
        cookie_id = self.gradio.cookie_id
        token = cookies.get(f"access-token-{cookie_id}") or cookies.get(f"access-token-unsecure-{cookie_id}")
        user = self.gradio.tokens.get(token) if token else None
        client = scope.get("client")
        return visitor_key(user, client[0] if client else None)

    def _lifespan(self, receive: Receive) -> Receive:
        """`receive` for the app's lifespan: the sweep starts with the app and stops with it."""

        async def lifespan() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._sweeping = asyncio.create_task(self._sweep_now_and_then())
            elif message["type"] == "lifespan.shutdown" and self._sweeping is not None:
                self._sweeping.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._sweeping
            return message

        return lifespan

    async def _sweep_now_and_then(self) -> None:
        every = min(SWEEP_SECONDS, max(1.0, self.kept / 10))
        while True:
            let_in = self._let_in
            try:
                file_sets = self.gradio.get_blocks().temp_file_sets
                left = await asyncio.to_thread(sweep, self.folder, time.time() - self.kept, file_sets)
                self.held = left + self._let_in - let_in  # (what came in during the sweep, on top)
            except Exception:  # a sweep that failed is tried again at the next
                log.warning("could not sweep the upload folder %s", self.folder, exc_info=True)
            await asyncio.sleep(every)


def sweep(folder: Path, horizon: float, file_sets: list[set[str]]) -> int:
    """Delete the files under `folder` that arrived before `horizon` (a time.time()), and the folders that held
    them, and forget them in Gradio's `file_sets` (the files it made or took in); the bytes left."""
    left = 0
    for root, _, names in os.walk(folder, topdown=False):
        for name in names:
            path = os.path.join(root, name)
            try:
                found = os.lstat(path)
                if found.st_ctime >= horizon:
                    left += found.st_size
                    continue
                os.remove(path)
            except OSError:  # gone meanwhile
                continue
            for files in file_sets:
                files.discard(path)
        if root != str(folder):
            with contextlib.suppress(OSError):  # not empty, or gone
                if os.lstat(root).st_ctime < horizon:
                    os.rmdir(root)
    return left


async def _say(send: Send, status: int, sentence: str, retry_after: float | None) -> None:
    """A refusal as Gradio's own upload route answers one (plain text: the page shows it after the status)."""
    body = sentence.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    if retry_after is not None:
        headers.append((b"retry-after", str(max(1, round(retry_after))).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

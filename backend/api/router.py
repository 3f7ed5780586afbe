"""Switchboard as an OpenAI-compatible HTTP API under `/v1`, for any OpenAI SDK, editor plugin or agent framework:

    POST /v1/chat/completions    streamed (SSE) or not; routes fail over and continue mid-stream as in the UI
    GET  /v1/models              every model and route, with what it can do
    POST /v1/images/generations  url or b64_json; a url is served by the app (GET /v1/files/...) for an hour

Model ids are ours (`provider/model` or a route). Errors have OpenAI's shape and status codes, so SDKs raise their
own typed errors: 400 a bad request, 401 no valid key, 403 the API is off here, 404 an unknown model, 413 a body
too large, 429 a limit (with Retry-After), 502/503/504 the upstream failed.

Who calls: with logins (`auth`), each request needs `Authorization: Bearer <key>`, a key made by
`switchboard token NAME` (stored hashed; revocable), and acts as that login: its images, and its one allowance
of the per-visitor limits, shared with its page and its other keys. A key works only while its login is active
(`Users.active`, asked at every request): a login taken out of the users file loses its keys with it. Without
logins the API answers only on a loopback address, as the local owner: an app reachable from other machines
without logins serves no API, as it serves no UI.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiofiles
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse

from ..app import Backend
from ..auth import LOCAL_OWNER
from ..errors import SwitchboardError
from ..limits import VisitorLimits, login_visitor
from ..request import ChatRequest
from .errors import GatewayError, as_gateway_error
from .files import ImageURLs
from .requests import chat_request, image_request, json_body
from .wire import collect, completion_chunks

if TYPE_CHECKING:
    from ..auth import Users


@dataclass(frozen=True, slots=True)
class Caller:
    owner: str  # whose images and limits
    visitor: str  # what per-visitor limits count: the key's login (as its page counts), or the local owner


def gateway_router(
    backend: Backend, limits: VisitorLimits, *, logins: Users | None, served: bool = True, prefix: str = "/v1"
) -> APIRouter:
    """The `/v1` routes over `backend`. `logins`: every request needs an API key of an active login; `served`
    False: every request is refused with 403 (an app reachable from other machines without logins)."""
    gateway = _Gateway(backend, limits, logins, served)
    router = APIRouter(prefix=prefix)
    router.get("/models")(gateway.models)
    router.post("/chat/completions")(gateway.chat_completions)
    router.post("/images/generations")(gateway.images_generations)
    router.get("/files/{token}", name="gateway_file")(gateway.file)
    return router


class _Gateway:
    """The routes' handlers over one backend, its limits and its logins."""

    def __init__(self, backend: Backend, limits: VisitorLimits, logins: Users | None, served: bool) -> None:
        self.backend, self.limits, self.logins, self.served = backend, limits, logins, served
        self.files = ImageURLs(backend.settings.app.data_dir / "images", backend.shared_files)

    async def caller(self, request: Request) -> Caller:
        if not self.served:
            raise GatewayError(
                403,
                "The API is off: this app is reachable from other machines without logins. Turn on [auth] to use "
                "it with API keys, or run it on a loopback address.",
                "permission_error",
            )
        if self.logins is None:
            return Caller(LOCAL_OWNER, LOCAL_OWNER)
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        found = await self.backend.api_keys.owner(key.strip()) if scheme.lower() == "bearer" else None
        if found is None:
            raise GatewayError(
                401,
                "A valid API key is needed: Authorization: Bearer <key> (switchboard token NAME makes one).",
                "invalid_request_error",
                "invalid_api_key",
            )
        owner, _ = found
        if not self.logins.active(owner):
            raise GatewayError(
                401, "This API key's login is no longer active here.", "invalid_request_error", "invalid_api_key"
            )
        return Caller(owner, login_visitor(owner))

    async def models(self, request: Request) -> Response:
        try:
            await self.caller(request)
        except GatewayError as error:
            return error.response()
        return JSONResponse({"object": "list", "data": _models(self.backend)})

    async def chat_completions(self, request: Request) -> Response:
        backend, limits = self.backend, self.limits
        try:
            who = await self.caller(request)
            body = await json_body(request)
            asked, streaming, usage_chunk = chat_request(body, backend.settings.app.max_message_chars)
            backend.chat.plan(asked)  # an unknown model or a capability it lacks: refused now
            await limits.count(who.visitor)
        except (GatewayError, SwitchboardError) as error:
            return as_gateway_error(error).response()
        if not streaming:
            try:
                async with limits.hold(who.visitor):
                    completion = await collect(backend.chat.stream(asked), asked.model)
            except SwitchboardError as error:
                return as_gateway_error(error).response()
            return JSONResponse(completion.model_dump(exclude_none=True))
        return await _sse(_stream(backend, limits, who, asked, usage_chunk))

    async def images_generations(self, request: Request) -> Response:
        try:
            who = await self.caller(request)
            asked, encoding = image_request(self.backend.settings, await json_body(request))
            async with self.limits.admit(who.visitor):
                stored = await self.backend.images.generate(asked, who.owner)
        except (GatewayError, SwitchboardError) as error:
            return as_gateway_error(error).response()
        data = []
        for image in stored:
            if encoding == "b64_json":
                async with aiofiles.open(image.path, "rb") as file:  # (megabytes: not on the event loop)
                    data.append({"b64_json": base64.b64encode(await file.read()).decode("ascii")})
            else:
                data.append({"url": str(request.url_for("gateway_file", token=await self.files.add(image.path)))})
            if image.revised_prompt:
                data[-1]["revised_prompt"] = image.revised_prompt
        return JSONResponse({"created": int(time.time()), "data": data})

    async def file(self, token: str) -> Response:
        """A generated image by the unguessable token its URL carries (as OpenAI's image URLs: no key needed,
        valid for an hour)."""
        path = await self.files.get(token)
        if path is None or not path.is_file():
            return GatewayError(
                404, "No such file (image URLs answer for an hour).", "invalid_request_error"
            ).response()
        return FileResponse(path)


async def _stream(
    backend: Backend, limits: VisitorLimits, who: Caller, request: ChatRequest, usage_chunk: bool
) -> AsyncIterator[bytes | GatewayError]:
    """The SSE body: chunks as the reply streams, OpenAI's usage chunk when asked for, [DONE]. A failure is
    yielded as a GatewayError (see `_sse`), then the end."""
    try:
        async with limits.hold(who.visitor):
            async for chunk in completion_chunks(backend.chat.stream(request), request.model):
                usage = chunk.usage
                chunk.usage = None
                if chunk.choices:
                    yield b"data: " + chunk.model_dump_json(exclude_none=True).encode() + b"\n\n"
                if usage is not None and usage_chunk:
                    final = {**chunk.model_dump(exclude_none=True), "choices": [], "usage": usage.model_dump()}
                    yield b"data: " + json.dumps(final).encode() + b"\n\n"
    except SwitchboardError as error:
        yield as_gateway_error(error)
    yield b"data: [DONE]\n\n"


async def _sse(events: AsyncIterator[bytes | GatewayError]) -> Response:
    """A streamed answer. Its first event is awaited before the 200 goes out, so a failure before any output (an
    upstream's 429, a refused key upstream) is answered with its own status code and headers; a failure after
    it is an `error` event in OpenAI's shape (SDKs raise it)."""
    first = await anext(events, None)
    if isinstance(first, GatewayError):
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()
        return first.response()

    def encoded(event: bytes | GatewayError) -> bytes:
        return b"data: " + json.dumps(event.body()).encode() + b"\n\n" if isinstance(event, GatewayError) else event

    async def body() -> AsyncIterator[bytes]:
        if first is not None:
            yield encoded(first)
        async for event in events:
            yield encoded(event)

    headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}
    return StreamingResponse(body(), media_type="text/event-stream", headers=headers)


def _models(backend: Backend) -> list[dict[str, Any]]:
    """Every chat model and route, then image models, with what each can do."""
    listed: dict[str, dict[str, Any]] = {}
    ids = [choice.id for choice in backend.models.chat_choices()]
    ids += [choice.id for choice in backend.models.choices("image")]
    for model_id in ids:
        if model_id in listed:
            continue
        try:
            info = backend.models.info(model_id)
        except SwitchboardError:
            continue
        owner = "route" if model_id in backend.settings.routes else model_id.partition("/")[0]
        entry: dict[str, Any] = {"id": model_id, "object": "model", "created": 0, "owned_by": owner}
        entry["capabilities"] = {
            "chat": info.chat,
            "vision": info.vision,
            "images": info.images,
            "reasoning": info.reasoning,
        }
        if info.context_length:
            entry["context_length"] = info.context_length
        listed[model_id] = entry
    return list(listed.values())

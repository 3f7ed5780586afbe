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
import logging
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiofiles
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse

from ..app import Backend
from ..client.async_client import collect, completion_chunks
from ..errors import (
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CoolingDownError,
    NotFoundError,
    PermissionDeniedError,
    ProviderUnavailableError,
    RateLimitError,
    ServiceUnavailableError,
    SwitchboardError,
    UnknownModelError,
    UnsupportedCapabilityError,
)
from ..limits import TooManyRequestsError, VisitorLimits, login_visitor
from ..request import PASS_THROUGH, ChatRequest, ImageRequest

if TYPE_CHECKING:
    from ..auth import Users
    from ..replicas.relay import Relay

log = logging.getLogger(__name__)

LOCAL_OWNER = "local"
FILE_SECONDS = 3600  # how long an image URL answers
FILES_KEPT = 10_000
ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})

# Request fields passed on to the model as they are (`max_tokens` is read with its newer name too; the rest of an
# OpenAI request is read below or ignored).
PASSED = tuple(name for name in PASS_THROUGH if name != "max_tokens")


@dataclass(frozen=True, slots=True)
class Caller:
    owner: str  # whose images and limits
    visitor: str  # what per-visitor limits count: the key's login (as its page counts), or the local owner


class GatewayError(Exception):
    """An answer in OpenAI's error shape."""

    def __init__(self, status: int, message: str, kind: str, code: str | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.retry_after = status, message, kind, code, retry_after

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": None, "code": self.code}}

    def response(self) -> JSONResponse:
        headers = {"retry-after": str(math.ceil(self.retry_after))} if self.retry_after else None
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def gateway_router(
    backend: Backend, limits: VisitorLimits, *, logins: Users | None, served: bool = True, prefix: str = "/v1"
) -> APIRouter:
    """The `/v1` routes over `backend`. `logins`: every request needs an API key of an active login; `served`
    False: every request is refused with 403 (an app reachable from other machines without logins)."""
    router = APIRouter(prefix=prefix)
    files = _Files(backend.settings.app.data_dir / "images", backend.replies.relay)

    async def caller(request: Request) -> Caller:
        if not served:
            raise GatewayError(
                403,
                "The API is off: this app is reachable from other machines without logins. Turn on [auth] to use "
                "it with API keys, or run it on a loopback address.",
                "permission_error",
            )
        if logins is None:
            return Caller(LOCAL_OWNER, LOCAL_OWNER)
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        found = await backend.api_keys.owner(key.strip()) if scheme.lower() == "bearer" else None
        if found is None:
            raise GatewayError(
                401,
                "A valid API key is needed: Authorization: Bearer <key> (switchboard token NAME makes one).",
                "invalid_request_error",
                "invalid_api_key",
            )
        owner, _ = found
        if not logins.active(owner):
            raise GatewayError(
                401, "This API key's login is no longer active here.", "invalid_request_error", "invalid_api_key"
            )
        return Caller(owner, login_visitor(owner))

    @router.get("/models")
    async def models(request: Request) -> Response:
        try:
            await caller(request)
        except GatewayError as error:
            return error.response()
        return JSONResponse({"object": "list", "data": _models(backend)})

    @router.post("/chat/completions")
    async def chat_completions(request: Request) -> Response:
        try:
            who = await caller(request)
            body = await _json_body(request)
            chat_request, streaming, usage_chunk = _chat_request(body, backend.settings.app.max_message_chars)
            backend.chat.plan(chat_request)  # an unknown model or a capability it lacks: refused now
            await limits.count(who.visitor)
        except (GatewayError, SwitchboardError) as error:
            return _error(error).response()
        if not streaming:
            try:
                async with limits.hold(who.visitor):
                    completion = await collect(backend.chat.stream(chat_request), chat_request.model)
            except SwitchboardError as error:
                return _error(error).response()
            return JSONResponse(completion.model_dump(exclude_none=True))
        return await _sse(_stream(backend, limits, who, chat_request, usage_chunk))

    @router.post("/images/generations")
    async def images_generations(request: Request) -> Response:
        try:
            who = await caller(request)
            body = await _json_body(request)
            image_request, encoding = _image_request(backend, body)
            async with limits.admit(who.visitor):
                stored = await backend.images.generate(image_request, who.owner)
        except (GatewayError, SwitchboardError) as error:
            return _error(error).response()
        data = []
        for image in stored:
            if encoding == "b64_json":
                async with aiofiles.open(image.path, "rb") as file:  # (megabytes: not on the event loop)
                    data.append({"b64_json": base64.b64encode(await file.read()).decode("ascii")})
            else:
                data.append({"url": str(request.url_for("gateway_file", token=await files.add(image.path)))})
            if image.revised_prompt:
                data[-1]["revised_prompt"] = image.revised_prompt
        return JSONResponse({"created": int(time.time()), "data": data})

    @router.get("/files/{token}", name="gateway_file")
    async def gateway_file(token: str) -> Response:
        """A generated image by the unguessable token its URL carries (as OpenAI's image URLs: no key needed,
        valid for an hour)."""
        path = await files.get(token)
        if path is None or not path.is_file():
            return GatewayError(
                404, "No such file (image URLs answer for an hour).", "invalid_request_error"
            ).response()
        return FileResponse(path)

    return router


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
        yield _error(error)
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


def _error(error: Exception) -> GatewayError:
    """Our error as OpenAI's status, type and code. Upstream details beyond our one sentence are never passed on
    (they can echo keys)."""
    if isinstance(error, GatewayError):
        return error
    message = error.user_message() if isinstance(error, SwitchboardError) else str(error)
    retry = getattr(error, "retry_after", None)
    match error:
        case UnknownModelError():
            return GatewayError(404, message, "invalid_request_error", "model_not_found")
        case TooManyRequestsError() | RateLimitError():
            return GatewayError(429, message, "rate_limit_error", "rate_limit_exceeded", retry or 1)
        case CoolingDownError():
            return GatewayError(503, message, "service_unavailable", "model_cooling_down", retry)
        case UnsupportedCapabilityError() | BadRequestError():
            return GatewayError(400, message, "invalid_request_error")
        case AuthenticationError() | PermissionDeniedError():  # the upstream refused our key: the server's fault
            return GatewayError(502, message, "server_error", "upstream_authentication")
        case NotFoundError():
            return GatewayError(502, message, "server_error", "upstream_not_found")
        case APITimeoutError():
            return GatewayError(504, message, "timeout")
        case ServiceUnavailableError() | ProviderUnavailableError():
            return GatewayError(503, message, "service_unavailable", None, retry)
        case APIError():  # a server error upstream, a connection that failed, a stream cut
            return GatewayError(502, message, "server_error")
        case SwitchboardError():  # an image that cannot be read, an import, a document: the request's fault
            return GatewayError(400, message, "invalid_request_error")
    return GatewayError(500, "The server failed; see its log.", "server_error")


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise GatewayError(400, "The request body is not JSON.", "invalid_request_error") from None
    if not isinstance(body, dict):
        raise GatewayError(400, "The request body must be a JSON object.", "invalid_request_error")
    return body


def _chat_request(body: dict[str, Any], max_chars: int) -> tuple[ChatRequest, bool, bool]:
    """The request, whether to stream, and whether to end the stream with a usage chunk. No message (system
    prompts included) may be longer than `max_chars` (app.max_message_chars), as in the UI."""
    model, messages = body.get("model"), body.get("messages")
    if not isinstance(model, str) or not model:
        raise GatewayError(
            400, "`model` is required: a provider/model id or a route (GET /v1/models).", "invalid_request_error"
        )
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise GatewayError(400, "`messages` must be a non-empty list of messages.", "invalid_request_error")
    for message in messages:
        chars = _text_length(message.get("content"))
        if chars > max_chars:
            role = message.get("role") if message.get("role") in ROLES else "chat"
            raise GatewayError(
                400,
                f"A {role} message has {chars:,} characters; the limit here is {max_chars:,}.",
                "invalid_request_error",
            )
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    options = body.get("stream_options") or {}
    try:
        request = ChatRequest(
            model=model,
            messages=messages,
            max_tokens=int(max_tokens) if max_tokens is not None else None,
            **{name: body[name] for name in PASSED if body.get(name) is not None},
        )
    except (TypeError, ValueError) as error:
        raise GatewayError(400, f"A parameter has the wrong type: {error}.", "invalid_request_error") from None
    return request, bool(body.get("stream")), bool(isinstance(options, dict) and options.get("include_usage"))


def _text_length(content: Any) -> int:
    """Characters of text in a message's content: a string, or OpenAI's parts."""
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        texts = (part.get("text") for part in content if isinstance(part, dict))
        return sum(len(text) for text in texts if isinstance(text, str))
    return 0


def _image_request(backend: Backend, body: dict[str, Any]) -> tuple[ImageRequest, str]:
    prompt, encoding = body.get("prompt"), body.get("response_format") or "url"
    if not isinstance(prompt, str) or not prompt.strip():
        raise GatewayError(400, "`prompt` is required.", "invalid_request_error")
    most = backend.settings.app.max_message_chars
    if len(prompt) > most:
        raise GatewayError(
            400, f"The prompt has {len(prompt):,} characters; the limit here is {most:,}.", "invalid_request_error"
        )
    if encoding not in ("url", "b64_json"):
        raise GatewayError(400, '`response_format` is "url" or "b64_json".', "invalid_request_error")
    try:
        request = ImageRequest(
            model=body.get("model") or backend.settings.defaults.image or "",
            prompt=prompt.strip(),
            size=str(body.get("size") or "1024x1024"),
            n=int(body.get("n") or 1),
            seed=int(body["seed"]) if body.get("seed") is not None else None,
            negative_prompt=body.get("negative_prompt"),
            quality=body.get("quality"),
        )
    except (TypeError, ValueError) as error:
        raise GatewayError(400, f"A parameter has the wrong type: {error}.", "invalid_request_error") from None
    return request, encoding


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


class _Files:
    """Generated images by unguessable tokens, for an hour (the newest FILES_KEPT in this process). With replicas,
    a token is kept in Redis too, so a URL answers on any replica that shares the images folder (deploy/'s one
    volume); a path found there is served only from inside that folder."""

    def __init__(self, folder: Path, relay: Relay | None) -> None:
        self._folder = folder.expanduser().resolve()
        self._relay = relay
        self._paths: OrderedDict[str, tuple[Path, float]] = OrderedDict()

    async def add(self, path: Path) -> str:
        token = secrets.token_urlsafe(24) + path.suffix
        self._paths[token] = (path, time.monotonic() + FILE_SECONDS)
        while len(self._paths) > FILES_KEPT:
            self._paths.popitem(last=False)
        if self._relay is not None:
            try:
                await self._relay.share_file(token, path, FILE_SECONDS)
            except Exception:  # Redis unreachable: the URL still answers here
                log.warning("could not share an image URL with the other replicas", exc_info=True)
        return token

    async def get(self, token: str) -> Path | None:
        found = self._paths.get(token)
        if found is not None:
            return found[0] if found[1] >= time.monotonic() else None
        if self._relay is None:
            return None
        try:
            shared = await self._relay.shared_file(token)
        except Exception:  # Redis unreachable: only this replica's URLs answer
            log.warning("could not look up an image URL of another replica", exc_info=True)
            return None
        if shared is None or not shared.resolve().is_relative_to(self._folder):
            return None
        return shared

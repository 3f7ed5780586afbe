"""What an API request's JSON body asks for, checked: a chat request, or an image request. Anything wrong is a
400 in OpenAI's shape with one sentence."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi import Request

from ..limits import too_many_characters
from ..request import PASS_THROUGH, ChatRequest, ImageRequest
from .errors import GatewayError

if TYPE_CHECKING:
    from ..config import Settings

ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})

# Request fields passed on to the model as they are (`max_tokens` is read with its newer name too; the rest of an
# OpenAI request is read below or ignored).
PASSED = tuple(name for name in PASS_THROUGH if name != "max_tokens")


async def json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise GatewayError(400, "The request body is not JSON.", "invalid_request_error") from None
    if not isinstance(body, dict):
        raise GatewayError(400, "The request body must be a JSON object.", "invalid_request_error")
    return body


def chat_request(body: dict[str, Any], max_chars: int) -> tuple[ChatRequest, bool, bool]:
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
            raise GatewayError(400, too_many_characters(f"A {role} message", chars, max_chars), "invalid_request_error")
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


def image_request(settings: Settings, body: dict[str, Any]) -> tuple[ImageRequest, str]:
    prompt, encoding = body.get("prompt"), body.get("response_format") or "url"
    if not isinstance(prompt, str) or not prompt.strip():
        raise GatewayError(400, "`prompt` is required.", "invalid_request_error")
    most = settings.app.max_message_chars
    if len(prompt) > most:
        raise GatewayError(400, too_many_characters("The prompt", len(prompt), most), "invalid_request_error")
    if encoding not in ("url", "b64_json"):
        raise GatewayError(400, '`response_format` is "url" or "b64_json".', "invalid_request_error")
    try:
        request = ImageRequest(
            model=body.get("model") or settings.defaults.image or "",
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

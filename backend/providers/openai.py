"""OpenAI-compatible chat completions over httpx, streamed as Server-Sent Events (parsed by httpx-sse).

Serves OpenAI itself and everything that copies its wire format: OpenRouter, Groq, vLLM, llama.cpp's server,
LM Studio, Ollama's /v1. Reads `delta.content`, `delta.reasoning_content` / `delta.reasoning`, tool-call deltas,
the final usage chunk and finish reasons.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
from httpx_sse import EventSource

from ..errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    InternalServerError,
    RateLimitError,
    StreamError,
    error_class_for_status,
    redact,
)
from ..events import Finish, ReasoningDelta, StreamEvent, TextDelta, ToolCallDelta, Usage
from ..request import PASS_THROUGH, ChatRequest
from ..retry import parse_retry_after
from .base import Provider


class OpenAIProvider(Provider):
    kind = "openai"
    supported_params = frozenset(PASS_THROUGH)

    def __init__(self, name: str, config) -> None:
        super().__init__(name, config)
        self._api_key = config.api_key()
        headers = {"Accept": "text/event-stream, application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        headers.update(config.headers)
        self._client = httpx.AsyncClient(
            base_url=config.base_url + "/",
            headers=headers,
            proxy=config.proxy or None,
            timeout=httpx.Timeout(connect=config.connect_timeout, read=config.read_timeout, write=30, pool=30),
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100),
            trust_env=False,
        )

    async def list_models(self) -> list[str]:
        if self.config.models:
            return list(self.config.models)
        # A short-lived client: this runs at start-up on a loop other than the one that serves chats.
        with self._mapped_errors(model=None):
            async with httpx.AsyncClient(
                base_url=self._client.base_url,
                headers=self._client.headers,
                proxy=self.config.proxy or None,
                timeout=self.config.connect_timeout,
                trust_env=False,
            ) as client:
                response = await client.get("models")
            if response.status_code >= 400:
                raise self._status_error(response, model=None)
            return sorted(entry["id"] for entry in response.json().get("data", []))

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        body: dict[str, Any] = {"model": request.model, "messages": request.messages, "stream": True}
        body.update(request.params())
        if self.config.stream_usage:
            body["stream_options"] = {"include_usage": True}
        body.update(request.extra_body)
        timeout = httpx.Timeout(request.timeout, connect=self.config.connect_timeout) if request.timeout else None
        with self._mapped_errors(request.model):
            async with self._client.stream(
                "POST", "chat/completions", json=body, **({"timeout": timeout} if timeout else {})
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise self._status_error(response, request.model)
                content_type = response.headers.get("content-type", "").partition(";")[0].strip()
                if content_type == "application/json":
                    # Some servers ignore stream=true and answer with one completion object.
                    for event in completion_events(json.loads(await response.aread())):
                        yield event
                    return
                if content_type != "text/event-stream":
                    raise StreamError(
                        f"expected an event stream, got content type {content_type or 'none'!r}",
                        provider=self.name,
                        model=request.model,
                        status=response.status_code,
                    )
                finished = False
                async for sse in EventSource(response).aiter_sse():
                    data = sse.data
                    if data == "[DONE]":
                        return
                    if not data:
                        continue
                    payload = self._decode(data, request.model)
                    if "error" in payload and not payload.get("choices"):
                        raise self._event_error(payload["error"], request.model)
                    for event in chunk_events(payload):
                        finished = finished or isinstance(event, Finish)
                        yield event
                if not finished:
                    raise APIConnectionError(
                        "the stream ended before the answer was complete", provider=self.name, model=request.model
                    )

    async def aclose(self) -> None:
        await self._client.aclose()

    def _decode(self, data: str, model: str) -> dict[str, Any]:
        try:
            payload = json.loads(data)
        except json.JSONDecodeError:
            payload = None
        if not isinstance(payload, dict):
            raise StreamError(f"malformed event: {data[:80]!r}", provider=self.name, model=model)
        return payload

    @contextlib.contextmanager
    def _mapped_errors(self, model: str | None) -> Iterator[None]:
        """Turn httpx's transport errors into our typed errors, most specific first."""
        try:
            yield
        except httpx.TimeoutException as exc:
            raise APITimeoutError(
                f"{type(exc).__name__} after the configured timeout", provider=self.name, model=model
            ) from None
        except (httpx.TransportError, httpx.StreamError) as exc:
            message = redact(str(exc) or type(exc).__name__, [self._api_key or ""])
            raise APIConnectionError(message, provider=self.name, model=model) from None

    def _status_error(self, response: httpx.Response, model: str | None) -> APIError:
        status = response.status_code
        message = _error_message(response) or response.reason_phrase or "error"
        return error_class_for_status(status)(
            redact(message, [self._api_key or ""]),
            provider=self.name,
            model=model,
            status=status,
            retry_after=parse_retry_after(response.headers),
        )

    def _event_error(self, error: Any, model: str) -> APIError:
        """An error sent inside a 200 stream, e.g. `data: {"error": {"message": ..., "type": ..., "code": ...}}`."""
        details = error if isinstance(error, dict) else {"message": str(error)}
        message = redact(str(details.get("message") or "error event in the stream"), [self._api_key or ""])
        code = details.get("code")
        kind = f"{details.get('type', '')} {code or ''}".lower()
        if isinstance(code, int) and code >= 400:
            cls = error_class_for_status(code)
        elif "rate_limit" in kind or "quota" in kind:
            cls = RateLimitError
        else:
            cls = InternalServerError
        return cls(message, provider=self.name, model=model, status=code if isinstance(code, int) else None)


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text.strip()[:300]
    error = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(error, dict):
        return str(error.get("message") or error.get("detail") or error)[:300]
    return str(error)[:300]


def chunk_events(payload: dict[str, Any]) -> Iterator[StreamEvent]:
    """The events in one `chat.completion.chunk`. This is the per-token path: keep it lean."""
    for choice in payload.get("choices") or ():
        index = choice.get("index", 0)
        delta = choice.get("delta")
        if delta:
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if reasoning:
                yield ReasoningDelta(reasoning, index)
            content = delta.get("content")
            if content:
                yield TextDelta(content, index)
            for call in delta.get("tool_calls") or ():
                function = call.get("function") or {}
                yield ToolCallDelta(
                    call.get("index", 0), call.get("id"), function.get("name"), function.get("arguments") or "", index
                )
        reason = choice.get("finish_reason")
        if reason:
            yield Finish(reason, index)
    usage = payload.get("usage")
    if usage:
        yield Usage(usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0)


def completion_events(body: dict[str, Any]) -> Iterator[StreamEvent]:
    """Events equivalent to a non-streamed `chat.completion` object."""
    for choice in body.get("choices") or ():
        index = choice.get("index", 0)
        message = choice.get("message") or {}
        delta = {
            "content": message.get("content"),
            "reasoning_content": message.get("reasoning_content") or message.get("reasoning"),
            "tool_calls": [dict(call, index=i) for i, call in enumerate(message.get("tool_calls") or ())],
        }
        yield from chunk_events(
            {"choices": [{"index": index, "delta": delta, "finish_reason": choice.get("finish_reason") or "stop"}]}
        )
    yield from chunk_events({"usage": body.get("usage")})

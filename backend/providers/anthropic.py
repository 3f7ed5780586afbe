"""Anthropic's Messages API over httpx, streamed as Server-Sent Events (parsed by httpx-sse).

The request differs from OpenAI's: the system prompt is a top-level field, turns must alternate user/assistant
(consecutive messages of one role are merged), content is a list of typed blocks, `max_tokens` is required, and
tools carry an `input_schema`. The stream is a sequence of named events: message_start (input tokens),
content_block_start / content_block_delta / content_block_stop per block (text, thinking, tool_use),
message_delta (stop reason, output tokens), message_stop; `ping` is a keep-alive, and an `error` event can
arrive after HTTP 200.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator
from dataclasses import replace
from typing import Any, Literal

from httpx_sse import EventSource
from pydantic import Field

from ..errors import APIConnectionError, APIError, InternalServerError, error_class_for_status
from ..events import Finish, ReasoningDelta, StreamEvent, TextDelta, ToolCallDelta, Usage
from ..media import iter_parts
from ..request import ChatRequest, Message, arguments_object, text_of
from ._config_base import _HTTPProviderBase
from .base import ModelInfo
from .continuation import continuation_request
from .http import ERROR_EVENT, SSE_OR_JSON, STREAM_CUT, HTTPProvider

STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# The `error.type` of an error event, as the HTTP status Anthropic uses for the same error.
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
TOOL_CHOICES = {"auto": "auto", "required": "any", "none": "none"}


class AnthropicProviderConfig(_HTTPProviderBase):
    """Anthropic's Messages API (SSE)."""

    kind: Literal["anthropic"]
    base_url: str = "https://api.anthropic.com"
    api_key_env: str | None = "ANTHROPIC_API_KEY"
    anthropic_version: str = "2023-06-01"
    max_tokens: int = Field(4096, ge=1, description="used when a request sets none (the API requires one)")
    thinking_budget: int | None = Field(
        None,
        ge=1024,
        description="enable extended thinking with this budget; it is added to max_tokens, and temperature is "
        "left at the API's default (thinking requires it)",
    )


class AnthropicProvider(HTTPProvider[AnthropicProviderConfig]):
    kind = "anthropic"
    config_class = AnthropicProviderConfig
    # No `n`, `seed` or `response_format`: the Messages API has none of them.
    supported_params = frozenset({"temperature", "top_p", "max_tokens", "stop", "tools", "tool_choice"})

    def model_info(self, model: str) -> ModelInfo:
        return replace(super().model_info(model), reasoning=self.config.thinking_budget is not None)

    def continuation(self, request: ChatRequest, partial: str) -> ChatRequest:
        # Assistant prefill continues the very answer; with extended thinking the API refuses a prefilled turn.
        style = "prompt" if self.config.thinking_budget else "prefill"
        return continuation_request(request, partial, style)

    def auth_headers(self) -> dict[str, str]:
        headers = {"anthropic-version": self.config.anthropic_version, "Accept": SSE_OR_JSON}
        if self._api_key:
            headers["x-api-key"] = self._api_key
        return headers

    async def list_models(self) -> list[str]:
        if self.config.models:
            return list(self.config.models)
        listing = await self.get_listing("v1/models", params={"limit": 1000})
        return sorted(entry["id"] for entry in listing.get("data") or ())

    async def stream_chat(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        body = self.request_body(request)
        async with self.post_stream("v1/messages", body, request) as response:
            self.require_event_stream(response, request.model)
            reader = EventReader()
            async for sse in EventSource(response).aiter_sse():
                if not sse.data:
                    continue
                payload = self.decode_json(sse.data, request.model)
                kind = payload.get("type")
                if kind == "message_stop":
                    break
                if kind == "error":
                    raise self._event_error(payload.get("error"), request.model)
                for event in reader.events(kind, payload):
                    yield event
            if not reader.finished:
                raise APIConnectionError(STREAM_CUT, provider=self.name, model=request.model)

    def request_body(self, request: ChatRequest) -> dict[str, Any]:
        """The Messages request. Two adjustments keep common requests (the chat tab sends temperature 0.7, top_p 1
        and max_tokens 1024 every time) from being refused with HTTP 400:
        - top_p of 1 or more is a no-op and is left out: recent models refuse temperature and top_p together;
        - with extended thinking, `max_tokens` must exceed the thinking budget and temperature must stay at its
          default, so the budget is added on top of max_tokens (which then bounds the answer) and temperature is
          left out."""
        system, messages = anthropic_messages(request.messages)
        budget = self.config.thinking_budget
        body: dict[str, Any] = {
            "model": request.model,
            "max_tokens": (request.max_tokens or self.config.max_tokens) + (budget or 0),
        }
        if system:
            body["system"] = system
        body["messages"] = messages
        body["stream"] = True
        if request.temperature is not None and not budget:
            body["temperature"] = request.temperature
        if request.top_p is not None and request.top_p < 1:
            body["top_p"] = request.top_p
        if request.stop is not None:
            body["stop_sequences"] = request.stop_list()
        if budget:
            body["thinking"] = {"type": "enabled", "budget_tokens": budget}
        if request.tools:
            body["tools"] = [anthropic_tool(tool) for tool in request.tools]
        if request.tool_choice is not None:
            body["tool_choice"] = anthropic_tool_choice(request.tool_choice)
        body.update(request.extra_body)
        return body

    def _event_error(self, error: Any, model: str) -> APIError:
        """An `error` event, e.g. `{"type": "error", "error": {"type": "overloaded_error", "message": ...}}`."""
        details = error if isinstance(error, dict) else {"message": str(error)}
        message = self.secret(str(details.get("message") or ERROR_EVENT))
        status = ERROR_STATUS.get(details.get("type", ""))
        cls = error_class_for_status(status) if status else InternalServerError
        return cls(message, provider=self.name, model=model, status=status)


class EventReader:
    """Turns the events of one reply into stream events. Tool calls are numbered in order of their blocks."""

    __slots__ = ("calls", "finished", "usage", "with_arguments")

    def __init__(self) -> None:
        self.calls: dict[int, int] = {}  # content block index -> tool call index
        self.with_arguments: set[int] = set()  # tool calls that received argument text
        self.usage: dict[str, Any] = {}
        self.finished = False

    def events(self, kind: str | None, payload: dict[str, Any]) -> Iterator[StreamEvent]:
        """The per-token path (content_block_delta first): keep it lean."""
        if kind == "content_block_delta":
            delta = payload.get("delta") or {}
            delta_type = delta.get("type")
            if delta_type == "text_delta":
                if delta.get("text"):
                    yield TextDelta(delta["text"])
            elif delta_type == "thinking_delta":
                if delta.get("thinking"):
                    yield ReasoningDelta(delta["thinking"])
            elif delta_type == "input_json_delta":
                call = self.calls.get(payload.get("index", -1))
                if call is not None and delta.get("partial_json"):
                    self.with_arguments.add(call)
                    yield ToolCallDelta(call, arguments=delta["partial_json"])
        elif kind == "content_block_start":
            block = payload.get("content_block") or {}
            block_type = block.get("type")
            if block_type == "tool_use":
                call = self.calls[payload.get("index", -1)] = len(self.calls)
                yield ToolCallDelta(call, block.get("id"), block.get("name"))
            elif block_type == "text" and block.get("text"):
                yield TextDelta(block["text"])
            elif block_type == "thinking" and block.get("thinking"):
                yield ReasoningDelta(block["thinking"])
        elif kind == "content_block_stop":
            call = self.calls.get(payload.get("index", -1))
            if call is not None and call not in self.with_arguments:
                yield ToolCallDelta(call, arguments="{}")  # a call without arguments still carries valid JSON
        elif kind == "message_start":
            self.usage = (payload.get("message") or {}).get("usage") or {}
        elif kind == "message_delta":
            usage = self.usage = {**self.usage, **(payload.get("usage") or {})}
            reason = (payload.get("delta") or {}).get("stop_reason")
            if reason:
                self.finished = True
                yield Finish(STOP_REASONS.get(reason, "stop"))
            # Cached prompt tokens are counted apart from input_tokens; all of them were read.
            prompt = sum(usage.get(name) or 0 for name in _INPUT_COUNTS)
            yield Usage(prompt, usage.get("output_tokens") or 0)


_INPUT_COUNTS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def anthropic_messages(messages: list[Message]) -> tuple[str, list[dict[str, Any]]]:
    """The system text and the alternating user/assistant turns for OpenAI-style `messages`."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            text = text_of(content)
            if text:
                system.append(text)
            continue
        blocks = content_blocks(content)
        if role == "assistant":
            blocks += [
                {
                    "type": "tool_use",
                    "id": call.get("id"),
                    "name": call["function"]["name"],
                    "input": arguments_object(call["function"]),
                }
                for call in message.get("tool_calls") or ()
            ]
        else:
            if role == "tool":
                result: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.get("tool_call_id")}
                if blocks:
                    result["content"] = blocks
                blocks = [result]
            role = "user"
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return "\n\n".join(system), turns


def content_blocks(content: Any) -> list[dict[str, Any]]:
    """Text and image blocks; whitespace-only text is left out, since the API refuses it."""
    blocks: list[dict[str, Any]] = []
    for part in iter_parts(content):
        if isinstance(part, str):
            if part.strip():
                blocks.append({"type": "text", "text": part})
        else:
            blocks.append({"type": "image", "source": {"type": "base64", "media_type": part.mime, "data": part.b64}})
    return blocks


def anthropic_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's `{"type": "function", "function": {name, description, parameters}}` as Anthropic's tool."""
    function = tool.get("function") or tool
    converted = {"name": function["name"]}
    if function.get("description"):
        converted["description"] = function["description"]
    converted["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
    return converted


def anthropic_tool_choice(choice: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(choice, dict):
        return {"type": "tool", "name": choice["function"]["name"]}
    return {"type": TOOL_CHOICES.get(choice, "auto")}


ADAPTER = AnthropicProvider  # what backend.providers registers from this module

"""Google's Gemini API over httpx: streamGenerateContent with `alt=sse`, parsed by httpx-sse.

The key travels in the `x-goog-api-key` header, never in the URL. Messages become `contents` with roles user and
model and typed parts (text, inlineData, functionCall, functionResponse); system messages become
`systemInstruction`. Each event is a whole GenerateContentResponse: its candidates' new parts (a part with
`thought: true` is reasoning), a `finishReason` on a candidate's last event, and `usageMetadata` so far. There is
no end marker: the stream ends when the connection closes, so an answer without a finishReason is incomplete.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Iterator
from dataclasses import replace
from typing import Any, Literal

import httpx
from httpx_sse import EventSource
from pydantic import Field

from ..errors import (
    APIConnectionError,
    APIError,
    BadRequestError,
    InternalServerError,
    RateLimitError,
    ServiceUnavailableError,
    error_class_for_status,
)
from ..events import Finish, ReasoningDelta, StreamEvent, TextDelta, ToolCallDelta, Usage
from ..media import iter_parts
from ..request import ChatRequest, Message, arguments_object, text_of
from ._config_base import _HTTPProviderBase
from .base import ModelInfo
from .http import ERROR_EVENT, SSE_OR_JSON, STREAM_CUT, HTTPProvider

FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "BLOCKLIST": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}
# An error's `status` (a google.rpc code name) when it comes without a usable HTTP code.
ERROR_CLASSES = {"RESOURCE_EXHAUSTED": RateLimitError, "UNAVAILABLE": ServiceUnavailableError}
FUNCTION_MODES = {"auto": "AUTO", "required": "ANY", "none": "NONE"}


class GeminiProviderConfig(_HTTPProviderBase):
    """Google's Gemini API (streamGenerateContent with SSE)."""

    kind: Literal["gemini"]
    base_url: str = "https://generativelanguage.googleapis.com/v1beta"
    api_key_env: str | None = "GEMINI_API_KEY"
    include_thoughts: bool = Field(True, description="stream the model's thought summaries as reasoning")


class GeminiProvider(HTTPProvider[GeminiProviderConfig]):
    kind = "gemini"
    config_class = GeminiProviderConfig
    supported_params = frozenset(
        {"temperature", "top_p", "max_tokens", "n", "seed", "stop", "response_format", "tools", "tool_choice"}
    )

    def model_info(self, model: str) -> ModelInfo:
        return replace(super().model_info(model), reasoning=self.config.include_thoughts)

    def auth_headers(self) -> dict[str, str]:
        headers = {"Accept": SSE_OR_JSON}
        if self._api_key:
            headers["x-goog-api-key"] = self._api_key
        return headers

    async def list_models(self) -> list[str]:
        if self.config.models:
            return list(self.config.models)
        listing = await self.get_listing("models", params={"pageSize": 1000})
        return sorted(
            entry["name"].removeprefix("models/")
            for entry in listing.get("models") or ()
            if "generateContent" in entry.get("supportedGenerationMethods", ("generateContent",))
        )

    async def stream_chat(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        body = self.request_body(request)
        # Tuned models are addressed as "tunedModels/NAME"; everything else lives under "models/".
        path = request.model if "/" in request.model else f"models/{request.model}"
        async with self.post_stream(f"{path}:streamGenerateContent", body, request, params={"alt": "sse"}) as response:
            self.require_event_stream(response, request.model)
            reader = ResponseReader()
            async for sse in EventSource(response).aiter_sse():
                if not sse.data:
                    continue
                payload = self.decode_json(sse.data, request.model)
                if not payload.get("candidates"):
                    self._raise_for_error_or_block(payload, request.model)
                for event in reader.events(payload):
                    yield event
            if not reader.complete:
                raise APIConnectionError(STREAM_CUT, provider=self.name, model=request.model)
            usage = reader.usage
            if usage:
                yield Usage(
                    usage.get("promptTokenCount") or 0,
                    (usage.get("candidatesTokenCount") or 0) + (usage.get("thoughtsTokenCount") or 0),
                )

    def request_body(self, request: ChatRequest) -> dict[str, Any]:
        system, contents = gemini_contents(request.messages)
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": [{"text": text} for text in system]}
        config: dict[str, Any] = {
            name: value
            for name, value in (
                ("temperature", request.temperature),
                ("topP", request.top_p),
                ("maxOutputTokens", request.max_tokens),
                ("seed", request.seed),
                ("candidateCount", request.n),
            )
            if value is not None
        }
        if request.stop is not None:
            config["stopSequences"] = request.stop_list()
        response_format = request.response_format or {}
        if response_format.get("type") in ("json_object", "json_schema"):
            config["responseMimeType"] = "application/json"
            schema = (response_format.get("json_schema") or {}).get("schema")
            if schema:
                # responseJsonSchema takes standard JSON Schema (additionalProperties, $ref...), as OpenAI's
                # json_schema does; the older responseSchema takes only an OpenAPI subset and refuses those.
                config["responseJsonSchema"] = schema
        if self.config.include_thoughts:
            config["thinkingConfig"] = {"includeThoughts": True}
        if config:
            body["generationConfig"] = config
        if request.tools:
            body["tools"] = [{"functionDeclarations": [function_declaration(tool) for tool in request.tools]}]
        if request.tool_choice is not None:
            body["toolConfig"] = {"functionCallingConfig": function_calling_config(request.tool_choice)}
        body.update(request.extra_body)
        return body

    def status_error(self, response: httpx.Response, model: str | None) -> APIError:
        error = super().status_error(response, model)
        if error.retry_after is None:
            # Quota errors say how long to wait in the body (google.rpc.RetryInfo), not in a header.
            error.retry_after = retry_delay(response)
        return error

    def _raise_for_error_or_block(self, payload: dict[str, Any], model: str) -> None:
        """Raise for an error event, or a prompt blocked before any candidate was generated."""
        if "error" in payload:
            error = payload["error"]
            details = error if isinstance(error, dict) else {"message": str(error)}
            code = details.get("code")
            if isinstance(code, int) and code >= 400:
                cls = error_class_for_status(code)
            else:
                cls = ERROR_CLASSES.get(details.get("status", ""), InternalServerError)
            message = self.secret(str(details.get("message") or ERROR_EVENT))
            raise cls(message, provider=self.name, model=model, status=code if isinstance(code, int) else None)
        reason = (payload.get("promptFeedback") or {}).get("blockReason")
        if reason:
            raise BadRequestError(
                f"Gemini blocked the prompt ({reason}) and generated nothing; rephrase the message",
                provider=self.name,
                model=model,
            )


class ResponseReader:
    """Turns the responses of one stream into events; keeps the last usage and which candidates finished."""

    __slots__ = ("calls", "finished", "open", "usage")

    def __init__(self) -> None:
        self.calls: dict[int, int] = {}  # candidate index -> tool calls so far
        self.open: set[int] = set()  # candidates seen without a finishReason yet
        self.finished = False
        self.usage: dict[str, Any] | None = None

    @property
    def complete(self) -> bool:
        return self.finished and not self.open

    def events(self, payload: dict[str, Any]) -> Iterator[StreamEvent]:
        """The per-token path: keep it lean."""
        for candidate in payload.get("candidates") or ():
            index = candidate.get("index", 0)
            content = candidate.get("content")
            if content:
                for part in content.get("parts") or ():
                    text = part.get("text")
                    if text:
                        yield ReasoningDelta(text, index) if part.get("thought") else TextDelta(text, index)
                    elif "functionCall" in part:
                        call = part["functionCall"]
                        number = self.calls.get(index, 0)
                        self.calls[index] = number + 1
                        yield ToolCallDelta(
                            number,
                            call.get("id") or f"call_{number}",
                            call.get("name"),
                            json.dumps(call.get("args") or {}),
                            index,
                        )
            reason = candidate.get("finishReason")
            if reason:
                self.finished = True
                self.open.discard(index)
                finish = FINISH_REASONS.get(reason, "stop")
                # Gemini says STOP after a function call; OpenAI's vocabulary says "tool_calls".
                yield Finish("tool_calls" if finish == "stop" and index in self.calls else finish, index)
            else:
                self.open.add(index)
        usage = payload.get("usageMetadata")
        if usage:
            self.usage = usage


def gemini_contents(messages: list[Message]) -> tuple[list[str], list[dict[str, Any]]]:
    """The system texts and the `contents` for OpenAI-style `messages`; consecutive turns of one role merge."""
    system: list[str] = []
    contents: list[dict[str, Any]] = []
    tool_names: dict[str, str] = {}  # tool_call_id -> function name: a functionResponse is matched by name
    for message in messages:
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            text = text_of(content)
            if text:
                system.append(text)
            continue
        parts: list[dict[str, Any]]
        if role == "tool":
            parts = [
                {
                    "functionResponse": {
                        "name": tool_names.get(message.get("tool_call_id", "")) or message.get("name", ""),
                        "response": tool_response(content),
                    }
                }
            ]
        else:
            parts = [
                {"text": part} if isinstance(part, str) else {"inlineData": {"mimeType": part.mime, "data": part.b64}}
                for part in iter_parts(content)
                if not isinstance(part, str) or part
            ]
        if role == "assistant":
            for call in message.get("tool_calls") or ():
                function = call["function"]
                tool_names[call.get("id")] = function["name"]
                parts.append({"functionCall": {"name": function["name"], "args": arguments_object(function)}})
        if not parts:
            continue
        gemini_role = "model" if role == "assistant" else "user"
        if contents and contents[-1]["role"] == gemini_role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": gemini_role, "parts": parts})
    return system, contents


def tool_response(content: Any) -> dict[str, Any]:
    """A tool result as the object a functionResponse needs: the result itself if it is a JSON object."""
    text = text_of(content)
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    return value if isinstance(value, dict) else {"content": text}


def function_declaration(tool: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's function tool as a Gemini function declaration (its schema as standard JSON Schema)."""
    function = tool.get("function") or tool
    declaration = {"name": function["name"]}
    if function.get("description"):
        declaration["description"] = function["description"]
    if function.get("parameters"):
        declaration["parametersJsonSchema"] = function["parameters"]
    return declaration


def function_calling_config(choice: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(choice, dict):
        return {"mode": "ANY", "allowedFunctionNames": [choice["function"]["name"]]}
    return {"mode": FUNCTION_MODES.get(choice, "AUTO")}


def retry_delay(response: httpx.Response) -> float | None:
    """Seconds from a google.rpc.RetryInfo detail (`"retryDelay": "37s"`) in an error body, if there is one."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if isinstance(body, list) and body:
        body = body[0]
    error = body.get("error") if isinstance(body, dict) else None
    for detail in (error.get("details") if isinstance(error, dict) else None) or ():
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            try:
                return max(float(str(detail.get("retryDelay", "")).removesuffix("s")), 0.0)
            except ValueError:
                return None
    return None


ADAPTER = GeminiProvider  # what backend.providers registers from this module

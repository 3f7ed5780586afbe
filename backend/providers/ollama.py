"""Ollama's native chat API over httpx: POST /api/chat streamed as newline-delimited JSON, /api/tags for models,
/api/embed for embeddings.

Unlike Ollama's OpenAI-compatible /v1, the native API takes `keep_alive`, Ollama's `options` and `format` (JSON
or a JSON schema), and streams the reasoning of thinking models as `message.thinking`. Each line is one object;
the last has `done: true`, the `done_reason` and the token counts. A failure is an HTTP status with
`{"error": "..."}`, or such a line in the middle of the stream.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, Literal

import httpx
from pydantic import Field

from ..errors import APIConnectionError, InternalServerError
from ..events import Finish, ReasoningDelta, StreamEvent, TextDelta, ToolCallDelta, Usage
from ..media import iter_parts
from ..request import ChatRequest, Message, arguments_object
from ._config_base import _HTTPProviderBase
from .http import STREAM_CUT, HTTPProvider, listed_names

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

FINISH_REASONS = {"stop": "stop", "length": "length"}


class OllamaProviderConfig(_HTTPProviderBase):
    """Ollama's native API: /api/chat (NDJSON stream), /api/tags for the model list, /api/embed."""

    kind: Literal["ollama"]
    base_url: str = "http://127.0.0.1:11434"
    keep_alive: str | None = Field(None, description='how long Ollama keeps the model loaded, e.g. "5m"')


class OllamaProvider(HTTPProvider[OllamaProviderConfig]):
    kind = "ollama"
    config_class = OllamaProviderConfig
    tasks = frozenset({"chat", "embed"})
    # No `n` and no `tool_choice`: Ollama has neither.
    supported_params = frozenset({"temperature", "top_p", "max_tokens", "seed", "stop", "response_format", "tools"})
    continuation_style = "prefill"  # /api/chat continues a final assistant message

    def auth_headers(self) -> dict[str, str]:
        # A key only matters behind an authenticating proxy or on Ollama's hosted service.
        headers = {"Accept": "application/x-ndjson, application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    async def list_models(self) -> list[str]:
        if self.config.models:
            return list(self.config.models)
        listing = await self.get_listing("api/tags")
        return sorted(listed_names(listing.get("models"), "name", "model"))

    async def stream_chat(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        body = self.request_body(request)
        async with self.post_stream("api/chat", body, request) as response:
            self.require_content_type(response, request.model, "application/x-ndjson", "application/json")
            reader = LineReader()
            async for line in ndjson_lines(response):
                payload = self.decode_json(line, request.model)
                if "error" in payload:
                    raise InternalServerError(
                        self.secret(str(payload["error"])), provider=self.name, model=request.model
                    )
                for event in reader.events(payload):
                    yield event
                if payload.get("done"):
                    return
            raise APIConnectionError(STREAM_CUT, provider=self.name, model=request.model)

    async def embed(self, texts: list[str], model: str) -> NDArray[np.float32]:
        """`/api/embed`: one vector per text, in order (Ollama's are already of unit length)."""
        body: dict[str, Any] = {"model": model, "input": texts}
        if self.config.keep_alive:
            body["keep_alive"] = self.config.keep_alive
        answer = await self.post_embeddings("api/embed", body, model)
        return self.embedding_matrix(answer.get("embeddings"), len(texts), model)

    def request_body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"model": request.model, "messages": ollama_messages(request.messages), "stream": True}
        options: dict[str, Any] = {
            name: value
            for name, value in (
                ("temperature", request.temperature),
                ("top_p", request.top_p),
                ("num_predict", request.max_tokens),
                ("seed", request.seed),
            )
            if value is not None
        }
        if request.stop is not None:
            options["stop"] = request.stop_list()
        if options:
            body["options"] = options
        if self.config.keep_alive:
            body["keep_alive"] = self.config.keep_alive
        output_format = ollama_format(request.response_format)
        if output_format is not None:
            body["format"] = output_format
        if request.tools:
            body["tools"] = request.tools  # Ollama takes OpenAI's function tool format as is
        body.update(request.extra_body)
        return body


class LineReader:
    """Turns the lines of one reply into events; counts tool calls, which Ollama sends whole, to index them."""

    __slots__ = ("calls",)

    def __init__(self) -> None:
        self.calls = 0

    def events(self, payload: dict[str, Any]) -> Iterator[StreamEvent]:
        """The per-token path: keep it lean."""
        message = payload.get("message")
        if message:
            thinking = message.get("thinking")
            if thinking:
                yield ReasoningDelta(thinking)
            content = message.get("content")
            if content:
                yield TextDelta(content)
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                arguments = function.get("arguments")
                yield ToolCallDelta(
                    self.calls,
                    call.get("id") or f"call_{self.calls}",
                    function.get("name"),
                    arguments if isinstance(arguments, str) else json.dumps(arguments or {}),
                )
                self.calls += 1
        if payload.get("done"):
            # Ollama says "stop" after a tool call; OpenAI's vocabulary says "tool_calls".
            reason = FINISH_REASONS.get(payload.get("done_reason") or "stop", "stop")
            yield Finish("tool_calls" if self.calls and reason == "stop" else reason)
            yield Usage(payload.get("prompt_eval_count") or 0, payload.get("eval_count") or 0)


async def ndjson_lines(response: httpx.Response) -> AsyncIterator[bytes]:
    """The non-blank lines of an NDJSON body, however the network cut it.

    Split on b"\\n" only: httpx's `aiter_lines()` also splits on U+0085, U+2028 and other Unicode line breaks,
    which Ollama's JSON encoder leaves unescaped inside strings, and that would cut a line in two. Working on
    bytes also keeps a UTF-8 character split across two network reads whole.
    """
    pending: list[bytes] = []
    async for chunk in response.aiter_bytes():
        if b"\n" not in chunk:
            pending.append(chunk)
            continue
        lines = chunk.split(b"\n")
        if pending:
            lines[0] = b"".join(pending) + lines[0]
            pending.clear()
        pending.append(lines.pop())
        for line in lines:
            if line.strip():
                yield line
    tail = b"".join(pending)
    if tail.strip():
        yield tail


def ollama_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """OpenAI-style messages in Ollama's shape: text content, images as base64, tool calls with object arguments."""
    out = []
    tool_names: dict[str, str] = {}  # tool_call_id -> function name, for Ollama's `tool_name` on tool results
    for message in messages:
        role = message.get("role")
        texts, images = [], []
        for part in iter_parts(message.get("content")):
            if isinstance(part, str):
                texts.append(part)
            else:
                images.append(part.b64)
        converted: dict[str, Any] = {"role": "system" if role == "developer" else role, "content": "\n".join(texts)}
        if images:
            converted["images"] = images
        calls = message.get("tool_calls")
        if calls:
            converted["tool_calls"] = [
                {"function": {"name": call["function"]["name"], "arguments": arguments_object(call["function"])}}
                for call in calls
            ]
            tool_names.update((call.get("id"), call["function"]["name"]) for call in calls)
        if role == "tool" and message.get("tool_call_id") in tool_names:
            converted["tool_name"] = tool_names[message["tool_call_id"]]
        out.append(converted)
    return out


def ollama_format(response_format: dict[str, Any] | None) -> Any:
    """`format`: "json" for OpenAI's json_object, the schema itself for json_schema, nothing for text."""
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        return (response_format.get("json_schema") or {}).get("schema") or "json"
    return None


ADAPTER = OllamaProvider  # what backend.providers registers from this module

"""OpenAI-compatible chat completions over httpx, streamed as Server-Sent Events (parsed by httpx-sse).

Serves OpenAI itself and everything that copies its wire format: OpenRouter, Groq, vLLM, llama.cpp's server,
LM Studio, Ollama's /v1. Reads `delta.content`, `delta.reasoning_content` / `delta.reasoning`, tool-call deltas,
the final usage chunk and finish reasons. Image models use /images/generations, embedding models /embeddings.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator
from typing import TYPE_CHECKING, Any, Literal

import httpx
from httpx_sse import EventSource
from pydantic import Field

from ..errors import (
    APIConnectionError,
    APIError,
    InternalServerError,
    RateLimitError,
    StreamError,
    error_class_for_status,
)
from ..events import Finish, ReasoningDelta, StreamEvent, TextDelta, ToolCallDelta, Usage
from ..request import PASS_THROUGH, ChatRequest, ImageRequest
from ._config_base import _HTTPProviderBase
from .base import GeneratedImage
from .continuation import continuation_request
from .http import ERROR_EVENT, JSON_BODY_LIMIT, SSE_OR_JSON, STREAM_CUT, HTTPProvider, bounded, listed_names, sniff_mime

OPENAI_URL = "https://api.openai.com/v1"  # OpenAI's own endpoint: the default in code (backend/client/in_code.py)

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray


class OpenAIProviderConfig(_HTTPProviderBase):
    """Any OpenAI-compatible endpoint: OpenAI, OpenRouter, Groq, vLLM, llama.cpp server, LM Studio, Ollama's /v1.
    Its `image_models` use `/images/generations`."""

    kind: Literal["openai"]
    stream_usage: bool = Field(True, description="ask for token usage at the end of a stream")
    continuation: Literal["prompt", "prefill"] = Field(
        "prompt",
        description="how this endpoint continues an answer another provider left unfinished: prompt (any "
        "model) or prefill (vLLM, SGLang, TGI: continue_final_message)",
    )

    @classmethod
    def default_endpoint(cls) -> str:
        # The file must name an endpoint (this kind serves many); in code, OpenAI's own is the obvious default.
        return OPENAI_URL


class OpenAIProvider(HTTPProvider[OpenAIProviderConfig]):
    kind = "openai"
    config_class = OpenAIProviderConfig
    supported_params = frozenset(PASS_THROUGH)
    tasks = frozenset({"chat", "image", "embed"})

    def continuation(self, request: ChatRequest, partial: str) -> ChatRequest:
        if self.config.continuation != "prefill":
            return continuation_request(request, partial, "prompt")
        # vLLM, SGLang and TGI: format the final assistant message open-ended, so the model goes on with it.
        resumed = continuation_request(request, partial, "prefill")
        resumed.extra_body = {**request.extra_body, "continue_final_message": True, "add_generation_prompt": False}
        return resumed

    def auth_headers(self) -> dict[str, str]:
        headers = {"Accept": SSE_OR_JSON}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    async def list_models(self) -> list[str]:
        if self.config.models:
            return list(self.config.models)
        listing = await self.get_listing("models")
        return sorted(listed_names(listing.get("data"), "id"))

    async def stream_chat(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        body: dict[str, Any] = {"model": request.model, "messages": request.messages, "stream": True}
        body.update(request.params())
        if self.config.stream_usage:
            body["stream_options"] = {"include_usage": True}
        body.update(request.extra_body)
        async with self.post_stream("chat/completions", body, request) as response:
            content_type = response.headers.get("content-type", "").partition(";")[0].strip()
            if content_type == "application/json":
                # Some servers ignore stream=true and answer with one completion object, or with an error.
                completion = self.decode_json(await response.aread(), request.model)
                if "error" in completion and not completion.get("choices"):
                    raise self._event_error(completion["error"], request.model)
                for event in completion_events(completion):
                    yield event
                return
            self.require_event_stream(response, request.model)
            finished = False
            async for sse in EventSource(response).aiter_sse():
                data = sse.data
                if data == "[DONE]":
                    return
                if not data:
                    continue
                payload = self.decode_json(data, request.model)
                if "error" in payload and not payload.get("choices"):
                    raise self._event_error(payload["error"], request.model)
                for event in chunk_events(payload):
                    if isinstance(event, Finish):
                        finished = True
                    yield event
            if not finished:
                raise APIConnectionError(STREAM_CUT, provider=self.name, model=request.model)

    async def generate_images(self, request: ImageRequest) -> list[GeneratedImage]:
        """`/images/generations`. GPT image models always answer in base64; others are asked for base64 too.
        A URL on the endpoint's own origin is downloaded at once, with its credentials (OpenAI's URLs expire after
        an hour); any other URL comes back as `GeneratedImage.url` with no data, for the caller to fetch without
        them: the key never goes to a host the answer names."""
        body: dict[str, Any] = {"model": request.model, "prompt": request.prompt, "n": request.n, "size": request.size}
        if not request.model.startswith("gpt-image"):
            body["response_format"] = "b64_json"
        if request.quality:
            body["quality"] = request.quality
        if request.seed is not None:  # not OpenAI's own API, but accepted by several compatible servers
            body["seed"] = request.seed
        answer = await self.post_json("images/generations", body, request.model, self.timeout(300))
        items = answer.get("data")
        images = []
        for item in items if isinstance(items, list) else ():
            if not isinstance(item, dict):
                continue
            revised = item.get("revised_prompt") if isinstance(item.get("revised_prompt"), str) else None
            if isinstance(item.get("b64_json"), str) and item["b64_json"]:
                data = self.decode_base64(item["b64_json"], request.model)
            elif isinstance(item.get("url"), str) and item["url"]:
                url = self._client.base_url.join(item["url"])
                if not self._same_origin(url):
                    images.append(GeneratedImage(b"", "", revised_prompt=revised, url=str(url)))
                    continue
                data = await self._download(url, request.model)
            else:
                continue
            images.append(GeneratedImage(data, sniff_mime(data), revised_prompt=revised))
        if not images:
            raise StreamError("the answer held no image", provider=self.name, model=request.model)
        return images

    async def embed(self, texts: list[str], model: str) -> NDArray[np.float32]:
        """`/embeddings`, asked for floats (every compatible server speaks them; base64 is OpenAI's own and
        vLLM's); the vectors put back in the order of `texts` by their `index`."""
        body = {"model": model, "input": texts, "encoding_format": "float"}
        answer = await self.post_embeddings("embeddings", body, model)
        items = answer.get("data")
        if isinstance(items, list) and all(isinstance(item, dict) for item in items):
            if all(isinstance(item.get("index"), int) for item in items):
                items = sorted(items, key=lambda item: item["index"])
            items = [item.get("embedding") for item in items]
        return self.embedding_matrix(items, len(texts), model)

    def _same_origin(self, url: httpx.URL) -> bool:
        """Whether `url` has this endpoint's scheme, host and port: only there may its credentials go."""
        base = self._client.base_url
        return (url.scheme, url.host, _port(url)) == (base.scheme, base.host, _port(base))

    async def _download(self, url: httpx.URL, model: str) -> bytes:
        """An image the endpoint serves itself, with the provider's credentials, of at most JSON_BODY_LIMIT bytes."""
        with self.mapped_errors(model):
            async with self._client.stream("GET", url, timeout=self.timeout(120)) as response:
                if response.status_code >= 400:
                    raise self.status_error(await bounded(response), model)
                return await self.read_body(response, model, JSON_BODY_LIMIT)

    def _event_error(self, error: Any, model: str) -> APIError:
        """An error sent inside a 200 stream, e.g. `data: {"error": {"message": ..., "type": ..., "code": ...}}`."""
        details = error if isinstance(error, dict) else {"message": str(error)}
        message = self.secret(str(details.get("message") or ERROR_EVENT))
        code = details.get("code")
        kind = f"{details.get('type', '')} {code or ''}".lower()
        if isinstance(code, int) and code >= 400:
            cls = error_class_for_status(code)
        elif "rate_limit" in kind or "quota" in kind:
            cls = RateLimitError
        else:
            cls = InternalServerError
        return cls(message, provider=self.name, model=model, status=code if isinstance(code, int) else None)


def _port(url: httpx.URL) -> int | None:
    return url.port or {"http": 80, "https": 443}.get(url.scheme)


def chunk_events(payload: dict[str, Any]) -> list[StreamEvent]:
    """The events in one `chat.completion.chunk`. This is the per-token path: keep it lean (a list, not a
    generator: most chunks hold one event)."""
    events: list[StreamEvent] = []
    for choice in payload.get("choices") or ():
        index = choice.get("index", 0)
        delta = choice.get("delta")
        if delta:
            content = delta.get("content")
            if content and (len(delta) == 1 or (len(delta) == 2 and "role" in delta)):  # the usual chunk
                events.append(TextDelta(content, index))
            else:
                events += _delta_events(delta, index)
        reason = choice.get("finish_reason")
        if reason:
            events.append(Finish(reason, index))
    usage = payload.get("usage")
    if usage:
        events.append(Usage(usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0))
    return events


def _delta_events(delta: dict[str, Any], index: int) -> Iterator[StreamEvent]:
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


ADAPTER = OpenAIProvider  # what backend.providers registers from this module

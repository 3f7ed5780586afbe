"""OpenAI-shaped response objects, so code written for openai-python reads ours the same way.

`ChatCompletion` here is the response object; `backend.ChatCompletion` (the g4f-style facade) is another thing.
Both extra fields, `provider` and `reasoning_content`, are ours.

Objects made once per request are pydantic models. The streamed ones, made for every token, are slotted
dataclasses with the same fields and the same `model_dump()` / `model_dump_json()` / `to_dict()`: validating our
own values with pydantic cost about 15 µs a chunk, a fifth of what reading the token off the network costs.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Literal

from pydantic import BaseModel


class FunctionCall(BaseModel):
    name: str | None = None
    arguments: str = ""


class ToolCall(BaseModel):
    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatCompletionMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCall] | None = None


class Choice(BaseModel):
    index: int
    message: ChatCompletionMessage
    finish_reason: str | None = None


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    provider: str | None = None
    choices: list[Choice]
    usage: CompletionUsage | None = None


class _Plain:
    """What openai-python's models offer for reading a streamed object, on a slotted dataclass."""

    __slots__ = ()

    def model_dump(self, *, exclude_none: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = dataclasses.asdict(self)  # type: ignore[call-overload]  # subclasses are dataclasses
        if exclude_none:
            data = _without_none(data)
        return data

    def model_dump_json(self, *, exclude_none: bool = False) -> str:
        return json.dumps(self.model_dump(exclude_none=exclude_none), ensure_ascii=False)

    to_dict = model_dump
    to_json = model_dump_json


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(item) for item in value]
    return value


@dataclasses.dataclass(slots=True)
class ChoiceDeltaFunctionCall(_Plain):
    name: str | None = None
    arguments: str = ""


@dataclasses.dataclass(slots=True)
class ChoiceDeltaToolCall(_Plain):
    index: int
    id: str | None = None
    function: ChoiceDeltaFunctionCall | None = None
    type: Literal["function"] = "function"


@dataclasses.dataclass(slots=True)
class ChoiceDelta(_Plain):
    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ChoiceDeltaToolCall] | None = None


@dataclasses.dataclass(slots=True)
class ChunkChoice(_Plain):
    index: int
    delta: ChoiceDelta
    finish_reason: str | None = None


@dataclasses.dataclass(slots=True)
class ChatCompletionChunk(_Plain):
    id: str
    created: int
    model: str
    choices: list[ChunkChoice]
    provider: str | None = None
    usage: CompletionUsage | None = None
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"

    def model_dump(self, *, exclude_none: bool = False) -> dict[str, Any]:
        data = {
            "id": self.id,
            "object": self.object,
            "created": self.created,
            "model": self.model,
            "provider": self.provider,
            "choices": [choice.model_dump() for choice in self.choices],
            "usage": self.usage.model_dump() if self.usage is not None else None,
        }
        return _without_none(data) if exclude_none else data


class ImageData(BaseModel):
    """One generated image: `url` is the local file it was saved to, `b64_json` its bytes in base64."""

    url: str | None = None
    b64_json: str | None = None
    revised_prompt: str | None = None


class ImagesResponse(BaseModel):
    created: int
    model: str
    data: list[ImageData]

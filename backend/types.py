"""OpenAI-shaped response objects, so code written for openai-python reads ours the same way.

`ChatCompletion` here is the response object; `backend.ChatCompletion` (the g4f-style facade) is another thing.
Both extra fields, `provider` and `reasoning_content`, are ours.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class FunctionCall(BaseModel):
    name: str | None = None
    arguments: str = ""


class ToolCall(BaseModel):
    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCall


class ChoiceDeltaToolCall(ToolCall):
    index: int


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


class ChoiceDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ChoiceDeltaToolCall] | None = None


class ChunkChoice(BaseModel):
    index: int
    delta: ChoiceDelta
    finish_reason: str | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    provider: str | None = None
    choices: list[ChunkChoice]
    usage: CompletionUsage | None = None


class ImageData(BaseModel):
    """One generated image: `url` is the local file it was saved to, `b64_json` its bytes in base64."""

    url: str | None = None
    b64_json: str | None = None
    revised_prompt: str | None = None


class ImagesResponse(BaseModel):
    created: int
    model: str
    data: list[ImageData]

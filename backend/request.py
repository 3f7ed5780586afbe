"""What a caller asks a provider for: OpenAI-style messages plus sampling parameters, or an image.

Messages keep OpenAI's shape (`{"role": ..., "content": str | [parts]}`) because it is what the Python API takes
and what most upstreams speak; adapters for other wire formats translate from it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

Message = dict[str, Any]

# Sampling and output parameters passed through to the upstream when set.
PASS_THROUGH = (
    "temperature",
    "top_p",
    "max_tokens",
    "n",
    "seed",
    "stop",
    "response_format",
    "tools",
    "tool_choice",
)


@dataclass(slots=True)
class ChatRequest:
    """One chat request. `model` is a `provider/model` id or a route name until the service resolves it."""

    model: str
    messages: list[Message]
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    n: int | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    timeout: float | None = None
    extra_body: dict[str, Any] = field(default_factory=dict)
    # `tools` holds the app's own tools ([tools.*]), not a caller's: only models in `tool_models` may serve it.
    server_tools: bool = False

    def params(self) -> dict[str, Any]:
        """The pass-through parameters that were set."""
        return {name: value for name in PASS_THROUGH if (value := getattr(self, name)) is not None}

    def for_model(self, model: str) -> ChatRequest:
        return replace(self, model=model)

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


def text_of(content: Any) -> str:
    """The text of a message's content, whether a plain string or a list of content parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text")


def arguments_object(function: dict[str, Any]) -> dict[str, Any]:
    """A tool call's arguments as an object, as Ollama, Anthropic and Gemini expect (OpenAI sends a JSON string).
    Arguments that are not a JSON object (a model's broken JSON being replayed) become an empty object."""
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return {}
    return arguments if isinstance(arguments, dict) else {}


SIZE = re.compile(r"^(\d{2,5})x(\d{2,5})$")
SIDES = (64, 4096)  # pixels per side that any image model we know of accepts; beyond them the request is refused


@dataclass(slots=True)
class ImageRequest:
    """One generation request. `model` is `provider/model` until the service resolves it."""

    model: str
    prompt: str
    negative_prompt: str | None = None
    size: str = "1024x1024"
    n: int = 1
    seed: int | None = None
    quality: str | None = None

    def for_model(self, model: str) -> ImageRequest:
        return replace(self, model=model)

    def dimensions(self) -> tuple[int, int]:
        match = SIZE.match(self.size)
        if not match:
            raise ValueError(f"size must look like 1024x1024 (got {self.size[:40]!r})")
        width, height = int(match[1]), int(match[2])
        low, high = SIDES
        if not (low <= width <= high and low <= height <= high):
            raise ValueError(f"each side of size must be between {low} and {high} pixels (got {width}x{height})")
        return width, height

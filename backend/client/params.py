"""The keyword parameters of `chat.completions.create`, named once: every overload of it (async and sync, streamed
or not), the g4f-style facade and the typed SDK's dialect take them from here."""

from __future__ import annotations

from typing import Any, TypedDict


class ChatParams(TypedDict, total=False):
    """Sampling and output parameters, passed to the model as they are (ChatRequest's fields of the same names)."""

    temperature: float | None
    top_p: float | None
    max_tokens: int | None
    n: int | None
    seed: int | None
    stop: str | list[str] | None
    timeout: float | None
    response_format: dict[str, Any] | None
    tools: list[dict[str, Any]] | None
    tool_choice: str | dict[str, Any] | None


class CreateParams(ChatParams, total=False):
    """Every keyword of `create` besides `model`, `messages` and `stream`: `extra_body` goes to the upstream as it
    is; `image` (bytes, a path, a file object, a PIL image, a data URL or an http(s) URL) is attached to the last
    user message."""

    extra_body: dict[str, Any] | None
    image: Any


# `create`'s keywords by name (`model` and `messages` too): what the typed SDK's requests pass to it, the rest of
# such a request going to the upstream in `extra_body`.
CREATE_FIELDS = frozenset({"model", "messages", *CreateParams.__optional_keys__})

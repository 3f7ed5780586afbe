"""Tool calls as the model streams them, put together; and what the conversation records of them.

Every adapter streams a call as `ToolCallDelta` events (OpenAI in pieces, Anthropic as a block and its JSON
fragments, Gemini and Ollama whole): the pieces of one call share its `call_index`. `CallCollector` joins them
into `ToolCall`s; `assistant_message` and `tool_message` are the OpenAI-shaped messages that go back to the model
(each adapter translates them into its own wire format).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from ..events import ToolCallDelta
from ..request import Message


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call the model asked for: `arguments` is the JSON text it wrote (perhaps not valid JSON)."""

    id: str
    name: str
    arguments: str

    def parsed_arguments(self) -> dict[str, Any]:
        """The arguments as an object; ValueError with one sentence when they are not a JSON object."""
        try:
            value = json.loads(self.arguments or "{}")
        except json.JSONDecodeError as error:
            raise ValueError(f"The arguments are not valid JSON ({error.msg} at character {error.pos}).") from None
        if not isinstance(value, dict):
            raise ValueError("The arguments must be a JSON object.")
        return value


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a call gave back: `text` for the model, `error` when it is a failure's sentence or the tool said so."""

    text: str
    error: bool = False


def new_call_id() -> str:
    """An id for a call whose model gave none (or gave one already used): unique, and valid for every API."""
    return f"call_{secrets.token_hex(12)}"


class CallCollector:
    """The calls of one model answer (its first choice), in the order the model began them."""

    __slots__ = ("_calls",)

    def __init__(self) -> None:
        self._calls: dict[int, list[Any]] = {}  # call_index -> [id, name, argument pieces]

    def add(self, delta: ToolCallDelta) -> None:
        call = self._calls.get(delta.call_index)
        if call is None:
            call = self._calls[delta.call_index] = [None, None, []]
        # The first id and name win: some servers repeat them in every piece.
        call[0] = call[0] or delta.id
        call[1] = call[1] or delta.name
        if delta.arguments:
            call[2].append(delta.arguments)

    def __bool__(self) -> bool:
        return bool(self._calls)

    def calls(self, taken: set[str]) -> list[ToolCall]:
        """The calls, each with an id unique among `taken` (ids already in the conversation), which grows."""
        made = []
        for call_id, name, pieces in self._calls.values():
            if not call_id or call_id in taken:
                call_id = new_call_id()
            taken.add(call_id)
            made.append(ToolCall(call_id, name or "", "".join(pieces)))
        return made


def assistant_message(text: str, calls: list[ToolCall]) -> Message:
    """The model's turn that asked for `calls`, with the text it wrote before them."""
    return {
        "role": "assistant",
        "content": text or None,
        "tool_calls": [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in calls
        ],
    }


def tool_message(call: ToolCall, outcome: Outcome) -> Message:
    return {"role": "tool", "tool_call_id": call.id, "content": outcome.text}


def call_ids(messages: list[Message]) -> set[str]:
    """The ids of the tool calls already in a conversation."""
    return {
        str(call["id"])
        for message in messages
        if message.get("role") == "assistant"
        for call in message.get("tool_calls") or ()
        if isinstance(call, dict) and call.get("id")
    }


def cut(text: str, limit: int) -> str:
    """`text` of at most about `limit` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n[... {len(text) - limit} more characters cut]"

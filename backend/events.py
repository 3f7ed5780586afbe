"""The small set of events every provider adapter yields, whatever its wire format.

Nothing above `backend/providers` knows a wire format: services, the Python client and the UI only see these.
They are plain slotted records, not frozen ones: one is made per token, and a frozen dataclass costs nearly three
times as much to make (each field is set through object.__setattr__). Treat them as read-only all the same.
`Started`, `Resumed`, `Retrying` and `Queued` are status events added by the service layer and the local model's
queue; `ToolCallStarted` and `ToolResult` are added by the tool loop (backend/tools/loop.py) around the calls it
runs for the model.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class TextDelta:
    """A piece of the visible answer."""

    text: str
    index: int = 0


@dataclass(slots=True)
class ReasoningDelta:
    """A piece of the model's reasoning ("thinking"), shown apart from the answer."""

    text: str
    index: int = 0


@dataclass(slots=True)
class ToolCallDelta:
    """A piece of a tool call; `arguments` fragments concatenate per (index, call_index)."""

    call_index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    index: int = 0


@dataclass(slots=True)
class Usage:
    """Token counts for the whole request, as reported upstream (or counted locally)."""

    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class Finish:
    """The choice ended; `reason` is OpenAI's vocabulary: stop, length, tool_calls, content_filter."""

    reason: str
    index: int = 0


@dataclass(slots=True)
class Started:
    """The named provider produced its first output for this request (after any retries or failover)."""

    provider: str
    model: str


@dataclass(slots=True)
class Resumed:
    """The provider answering failed mid-stream (`reason`, one sentence); `provider`/`model` continues the same
    answer from where it stopped. Text events after this one are the continuation."""

    provider: str
    model: str
    reason: str


@dataclass(slots=True)
class Retrying:
    """An attempt failed; the service waits `delay` seconds, then tries `provider`/`model` (after a failure
    mid-answer, to continue it: a `Resumed` follows once it answers)."""

    provider: str
    model: str
    delay: float
    reason: str


@dataclass(slots=True)
class Queued:
    """The request waits for a model that serves one generation at a time; `ahead` requests are before it."""

    ahead: int


@dataclass(slots=True)
class ToolCallStarted:
    """The app runs the model's call `id` of tool `name` (a function name the model was offered) with `arguments`
    (JSON text); with `confirm`, it first waits for the person's OK. A `ToolResult` with the same `id` follows."""

    id: str
    name: str
    arguments: str
    confirm: bool = False


@dataclass(slots=True)
class ToolResult:
    """What call `id` gave back, as the model reads it: `content` is untrusted text (the tool's, or one sentence
    saying why there is none: an error, a timeout, a refusal), `error` says which; `seconds` it took to run."""

    id: str
    name: str
    arguments: str
    content: str
    error: bool = False
    seconds: float = 0.0


StreamEvent = (
    TextDelta
    | ReasoningDelta
    | ToolCallDelta
    | Usage
    | Finish
    | Started
    | Resumed
    | Retrying
    | Queued
    | ToolCallStarted
    | ToolResult
)

"""A reply as its events build it (`ReplyRecord`): one fold over the stream events, used by the server to store the
reply and by the UI to show it."""

from __future__ import annotations

import time

from ..conversations.model import Handover, StoredMessage
from ..errors import SwitchboardError
from ..events import Finish, ReasoningDelta, Resumed, Started, StreamEvent, TextDelta, ToolCallDelta, Usage


class ReplyRecord:
    """A reply as its events build it: answer, reasoning, tool calls, who answered and who took over, usage,
    timings; `to_stored` makes the conversation's message of it."""

    def __init__(self, requested_model: str) -> None:
        self.requested = requested_model
        self.answering: str | None = None
        self.reasoning: list[str] = []
        self.text: list[str] = []
        self.tool_calls: dict[int, dict[str, str]] = {}
        self.handovers: list[Handover] = []
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.error: SwitchboardError | None = None
        self.error_text: str | None = None
        self.started_at = time.monotonic()
        self.first_token_at: float | None = None
        self.ended_at: float | None = None
        self.deltas = 0

    def apply(self, event: StreamEvent) -> None:
        if isinstance(event, (TextDelta, ReasoningDelta)):  # first: nearly every event is one
            if self.first_token_at is None:
                self.first_token_at = time.monotonic()
            self.deltas += 1
            (self.text if isinstance(event, TextDelta) else self.reasoning).append(event.text)
        elif isinstance(event, ToolCallDelta):
            call = self.tool_calls.setdefault(event.call_index, {"name": "", "arguments": ""})
            call["name"] = call["name"] or event.name or ""
            call["arguments"] += event.arguments
        elif isinstance(event, Started):
            self.answering = f"{event.provider}/{event.model}"
        elif isinstance(event, Resumed):
            at = sum(map(len, self.text))
            self.handovers.append(Handover(at=at, provider=event.provider, model=event.model, reason=event.reason))
        elif isinstance(event, Usage):
            self.usage = event
        elif isinstance(event, Finish):
            self.finish_reason = event.reason

    def fail(self, error: SwitchboardError) -> None:
        self.error = error
        self.error_text = error.user_message()

    def close(self) -> None:
        self.ended_at = time.monotonic()

    def answer(self) -> str:
        return "".join(self.text) + self._tool_calls_markdown()

    def to_stored(self, status: str = "complete") -> StoredMessage:
        """This reply for the conversation store, with where it came from and how fast."""
        provider, _, model = (self.answering or self.requested).partition("/")
        return StoredMessage.model_validate(
            {
                "handovers": self.handovers,
                "role": "assistant",
                "text": self.answer(),
                "reasoning": "".join(self.reasoning),
                "provider": provider or None,
                "model": model or None,
                "first_token_seconds": None if self.first_token_at is None else self.first_token_at - self.started_at,
                "seconds": None if self.ended_at is None else self.ended_at - self.started_at,
                "prompt_tokens": self.usage.prompt_tokens if self.usage else None,
                "completion_tokens": self.usage.completion_tokens if self.usage else None,
                "status": "failed" if self.error_text else status,
                "error": self.error_text,
            }
        )

    def _tool_calls_markdown(self) -> str:
        if not self.tool_calls:
            return ""
        calls = [f"`{c['name']}({c['arguments']})`" for _, c in sorted(self.tool_calls.items())]
        return "\n\nTool calls requested: " + ", ".join(calls)

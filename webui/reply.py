"""How one assistant reply looks in the Chatbot while it streams and after it ends.

A reply is a few consecutive assistant messages, grouped by the Chatbot into one bubble:
- an optional "Reasoning" thought (collapsible, open while reasoning streams),
- the answer itself (plain Markdown); when a provider failed mid-answer and another continued it, the answer is
  split there by a one-line marker,
- one line of status while waiting (queued for the local model, retrying, failing over),
- a footer thought: provider, model, time to first token, tokens/s, token counts; or the error sentence.
Thoughts carry a `title`. What the model is sent on the next turn comes from the stored conversation
(`backend.model_messages`), never from this view, which the page sends back and anyone could forge.
"""

from __future__ import annotations

import time
from typing import Any

from backend import (
    Finish,
    Handover,
    Queued,
    ReasoningDelta,
    Resumed,
    Retrying,
    Started,
    StoredMessage,
    StreamEvent,
    SwitchboardError,
    TextDelta,
    ToolCallDelta,
    Usage,
)

STOPPED = "⏹ Stopped"


class ReplyView:
    def __init__(self, requested_model: str) -> None:
        self.requested = requested_model
        self.answering: str | None = None
        self.reasoning: list[str] = []
        self.text: list[str] = []
        self.tool_calls: dict[int, dict[str, str]] = {}
        self.handovers: list[Handover] = []
        self.status = f"⏳ Waiting for {requested_model}…"
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.error: SwitchboardError | None = None
        self.error_text: str | None = None  # the sentence shown; kept when a reply is reopened later
        self.stopped = False
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
            self.status = ""
        elif isinstance(event, Resumed):
            at = sum(map(len, self.text))
            self.handovers.append(Handover(at=at, provider=event.provider, model=event.model, reason=event.reason))
            self.status = ""
        elif isinstance(event, Usage):
            self.usage = event
        elif isinstance(event, Finish):
            self.finish_reason = event.reason
        elif isinstance(event, Queued):
            ahead = f"{event.ahead} request{'s' if event.ahead != 1 else ''} ahead"
            self.status = f"⏳ Waiting for the model: {ahead}"
        elif isinstance(event, Retrying):
            wait = f" in {event.delay:.1f} s" if event.delay else ""
            self.status = f"↻ {event.reason} Trying {event.provider}/{event.model}{wait}…"

    def fail(self, error: SwitchboardError) -> None:
        self.error = error
        self.error_text = error.user_message()
        self.status = ""

    def close(self) -> None:
        self.ended_at = time.monotonic()
        self.status = ""

    def messages(self) -> list[dict[str, Any]]:
        done = self.ended_at is not None
        out: list[dict[str, Any]] = []
        if self.reasoning:
            status = "done" if done or self.text else "pending"
            out.append(_thought("Reasoning", "".join(self.reasoning), status=status))
        answer = "".join(self.text) + self._tool_calls_markdown()
        out += self._answer_messages(answer)
        if self.status:
            out.append(_thought(self.status, "", status="pending"))
        if self.stopped:
            out.append(stopped_marker())
        elif self.error_text is not None:
            out.append(_thought(f"⚠️ {self.error_text}", self._details(), status="done"))
        elif done and (answer or self.reasoning):
            out.append(_thought(self.summary(), self._details(), status="done"))
        elif done:
            out.append(_thought("The model returned an empty answer.", self._details(), status="done"))
        return out

    def to_stored(self, status: str = "complete") -> StoredMessage:
        """This reply for the conversation store, with where it came from and how fast."""
        provider, _, model = (self.answering or self.requested).partition("/")
        return StoredMessage(
            handovers=self.handovers,
            role="assistant",
            text="".join(self.text) + self._tool_calls_markdown(),
            reasoning="".join(self.reasoning),
            provider=provider or None,
            model=model or None,
            first_token_seconds=None if self.first_token_at is None else self.first_token_at - self.started_at,
            seconds=None if self.ended_at is None else self.ended_at - self.started_at,
            prompt_tokens=self.usage.prompt_tokens if self.usage else None,
            completion_tokens=self.usage.completion_tokens if self.usage else None,
            status="failed" if self.error_text else status,
            error=self.error_text,
        )

    @classmethod
    def restored(cls, message: StoredMessage) -> ReplyView:
        """The view of a stored reply, as it looked when it ended."""
        view = cls(f"{message.provider}/{message.model}" if message.provider else "unknown model")
        view.answering = view.requested if message.provider else None
        view.handovers = list(message.handovers)
        view.text = [message.text] if message.text else []
        view.reasoning = [message.reasoning] if message.reasoning else []
        view.started_at = 0.0
        view.first_token_at = message.first_token_seconds
        view.ended_at = message.seconds if message.seconds is not None else 0.0
        if message.prompt_tokens is not None:
            view.usage = Usage(message.prompt_tokens, message.completion_tokens or 0)
        view.error_text = message.error
        view.stopped = message.status == "stopped"
        view.status = ""
        return view

    def _answer_messages(self, answer: str) -> list[dict[str, Any]]:
        """The answer, split by a marker wherever another provider took over."""
        if not answer:
            return []
        out: list[dict[str, Any]] = []
        cuts = [handover.at for handover in self.handovers]
        for number, part in enumerate(split_markdown(answer, cuts)):
            if number:
                handover = self.handovers[number - 1]
                title = f"↪ {handover.provider}/{handover.model} continued from here. {handover.reason}".strip()
                out.append(_thought(title, "", status="done"))
            if part:
                out.append({"role": "assistant", "content": part})
        return out

    def summary(self) -> str:
        parts = [" → ".join([self.answering or self.requested, *(f"{h.provider}/{h.model}" for h in self.handovers)])]
        if self.first_token_at is not None:
            parts.append(f"first token {self.first_token_at - self.started_at:.2f} s")
        rate = self.tokens_per_second()
        if rate is not None:
            parts.append(f"{rate:.1f} tok/s")
        if self.usage is not None:
            parts.append(f"{self.usage.prompt_tokens} → {self.usage.completion_tokens} tokens")
        if self.finish_reason == "length":
            parts.append("cut at max tokens")
        return " · ".join(parts)

    def tokens_per_second(self) -> float | None:
        if self.first_token_at is None or self.ended_at is None:
            return None
        seconds = self.ended_at - self.first_token_at
        tokens = self.usage.completion_tokens if self.usage else self.deltas
        return tokens / seconds if seconds > 0 and tokens > 1 else None

    def _details(self) -> str:
        lines = [f"Requested: `{self.requested}`"]
        if self.answering:
            lines.append(f"Answered by: `{self.answering}`")
        for handover in self.handovers:
            lines.append(f"Continued by: `{handover.provider}/{handover.model}` ({handover.reason})")
        if self.first_token_at is not None:
            lines.append(f"Time to first token: {self.first_token_at - self.started_at:.3f} s")
        if self.ended_at is not None:
            lines.append(f"Total time: {self.ended_at - self.started_at:.3f} s")
        if self.usage is not None:
            lines.append(
                f"Tokens: {self.usage.prompt_tokens} prompt, {self.usage.completion_tokens} completion "
                f"({self.usage.total_tokens} total)"
            )
        if self.finish_reason:
            lines.append(f"Finish reason: {self.finish_reason}")
        if self.error is not None and self.error.status:
            lines.append(f"HTTP status: {self.error.status}")
        return "\n\n".join(lines)

    def _tool_calls_markdown(self) -> str:
        if not self.tool_calls:
            return ""
        calls = [f"`{c['name']}({c['arguments']})`" for _, c in sorted(self.tool_calls.items())]
        return "\n\nTool calls requested: " + ", ".join(calls)


def split_markdown(text: str, cuts: list[int]) -> list[str]:
    """`text` cut at the given offsets. A cut inside a ``` code block closes the block before it and opens it
    again after it, so both halves still render as code."""
    parts, start, fence = [], 0, ""
    for cut in [*cuts, len(text)]:
        part = fence + text[start:cut]
        fence = ""
        if cut < len(text):
            opening = _open_fence(part)
            if opening is not None:
                part += "\n```"
                fence = opening + "\n"
        parts.append(part)
        start = cut
    return parts


def _open_fence(markdown: str) -> str | None:
    """The opening line (```lang) of a code block left open at the end of `markdown`, if any."""
    opening = None
    for line in markdown.splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            opening = None if opening is not None else stripped
    return opening


def _thought(title: str, content: str, *, status: str) -> dict[str, Any]:
    return {"role": "assistant", "content": content, "metadata": {"title": title, "status": status}}


def stopped_marker() -> dict[str, Any]:
    return _thought(STOPPED, "You stopped this reply; the text above is what had arrived.", status="done")


def is_thought(message: dict[str, Any]) -> bool:
    return bool((message.get("metadata") or {}).get("title"))


def message_text(content: Any) -> str:
    """Text of a Chatbot message's content: a string, or Gradio 6's list of content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return content.get("text", "") if content.get("type", "text") == "text" else ""
    if isinstance(content, list | tuple):
        return "".join(message_text(part) for part in content)
    return ""

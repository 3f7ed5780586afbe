"""Continuing an answer on another provider after the first one failed mid-stream.

Two ways to ask a model to go on from a partial answer, chosen per adapter (`Provider.continuation_style`):
- "prefill": the partial answer is sent as the start of the assistant's turn, and the model writes what follows
  it. Anthropic (assistant prefill), Ollama's /api/chat and the embedded llama.cpp model do this natively; vLLM,
  SGLang and TGI do it with `continue_final_message` (OpenAI-compatible providers with `continuation = "prefill"`).
- "prompt": the partial answer is a finished assistant turn, followed by a user turn asking to continue it
  exactly where it stopped. Every chat model understands this; OpenAI's own API and Gemini need it.

A model asked to continue may repeat the last words it was shown; `OverlapTrimmer` drops such a repeat from the
start of the continuation, so the user reads one answer.
"""

from __future__ import annotations

from dataclasses import replace

from ..request import ChatRequest

CONTINUE_PROMPT = (
    "Your previous message was cut off by a network error. Continue it exactly from where it stopped, "
    "mid-sentence if need be. Do not repeat any of it, do not comment, do not start over."
)
# Anthropic refuses a prefilled turn that ends in whitespace, and other models read a trailing space as a token
# of its own; the whitespace is sent back by the service if the continuation does not start with its own.
MIN_OVERLAP = 8  # shorter repeats are too likely to be legitimate ("the the")
LOOKAHEAD = 160  # how much of the continuation is held back to look for a repeat


def continuation_request(request: ChatRequest, partial: str, style: str) -> ChatRequest:
    """`request` asking for what follows `partial`, in the given style ("prefill" or "prompt")."""
    answer = {"role": "assistant", "content": partial.rstrip()}
    if style == "prefill":
        return replace(request, messages=[*request.messages, answer])
    return replace(request, messages=[*request.messages, answer, {"role": "user", "content": CONTINUE_PROMPT}])


class OverlapTrimmer:
    """Holds back the first `LOOKAHEAD` characters of a continuation, drops any part of them that repeats the end
    of the partial answer, and restores whitespace the partial answer ended with when the continuation does not
    bring its own. `feed()` returns the text to show now; `flush()` what is left when the stream ends."""

    def __init__(self, partial: str) -> None:
        self._partial = partial
        self._held: list[str] = []
        self._held_length = 0
        self._done = False

    def feed(self, text: str) -> str:
        if self._done:
            return text
        self._held.append(text)
        self._held_length += len(text)
        if self._held_length < LOOKAHEAD or self._restarting():
            return ""
        return self.flush()

    def flush(self) -> str:
        if self._done:
            return ""
        self._done = True
        head = "".join(self._held)
        self._held.clear()
        return self._join(head)

    def _restarting(self) -> bool:
        """True while everything continued so far repeats the partial answer from its start: the model began the
        answer again, so hold on until it passes the point where the partial answer ended."""
        head = "".join(self._held).lstrip()
        return len(head) <= len(self._partial.strip()) and self._partial.lstrip().startswith(head)

    def _join(self, head: str) -> str:
        stripped = self._partial.rstrip()
        ended_with_space = len(stripped) < len(self._partial)  # that whitespace is already on screen
        body = head.lstrip()
        start = stripped.lstrip()
        if start and body.startswith(start):  # the whole answer again, then more
            rest = body[len(start) :]
        elif repeat := _overlap(stripped, body):
            rest = body[repeat:]
        else:
            rest = head  # with the continuation's own leading whitespace, if any
        return rest.lstrip() if ended_with_space else rest


def _overlap(partial: str, continuation: str) -> int:
    """Length of the longest start of `continuation` that the partial answer already ends with, in whole words
    and at least MIN_OVERLAP characters long; 0 if none."""
    for length in range(min(len(partial), len(continuation)), MIN_OVERLAP - 1, -1):
        if not partial.endswith(continuation[:length]):
            continue
        before = partial[len(partial) - length - 1 : len(partial) - length]
        after = continuation[length : length + 1]
        if not before.isalnum() and not after.isalnum():
            return length
    return 0

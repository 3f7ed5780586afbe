"""Ordinary refusals (an empty prompt, a limit reached, a file that is not an image): said to the visitor, logged as
one line. Gradio prints the traceback of every error a handler raises unless told not to; a refusal is not a
failure of the server, and a log full of tracebacks hides the ones that are."""

from __future__ import annotations

import logging
from typing import Any

import gradio as gr
from gradio.blocks import Block

from backend import too_many_characters

log = logging.getLogger("webui.refusals")


def refusal(message: str, *, duration: float | None = 10) -> gr.Error:
    """The error to raise for a refusal: a toast with `message`, one line in the log, no traceback."""
    log.info("refused: %s", message)
    return gr.Error(message, duration=duration, print_exception=False)


def verdict(problem: str | None, *, at: Block) -> dict[Block, Any]:
    """An event validator's answer: `problem` (if any) shown at the input `at`; the event's other inputs are
    fine (Gradio counts an input the answer does not name as valid)."""
    return {at: gr.validate(problem is None, problem or "")}


def too_long(text: str | None, limit: int, what: str = "message") -> str | None:
    """The sentence refusing `text` (a message, system prompt, preset, prompt) longer than `limit` characters
    (`app.max_message_chars`); None when it fits."""
    if len(text or "") <= limit:
        return None
    return too_many_characters(f"The {what}", len(text or ""), limit)


def say(message: str) -> None:
    """Say why in a toast, as a handler that changes nothing does (see `said`)."""
    gr.Warning(message, duration=8)


def said(message: str) -> dict[Any, Any]:
    """Say why in a toast and change nothing: a handler's answer (one `gr.skip()` leaves every output of its event
    as it is). Raising gr.Error would also cover every output with Gradio's error badge until each is dismissed;
    `refusal` is for where the event chain must stop."""
    say(message)
    return gr.skip()
